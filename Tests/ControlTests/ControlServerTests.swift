import Control
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The server on a real Unix socket: its socket file, the calls it answers,
/// and the clients it survives.
@Suite struct ControlServerTests {
    // MARK: - The socket

    @Test func theSocketIsCreatedWithItsModeAndGroup() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("losad.sock")
        let server = try await ControlServer.bind(.path(path, mode: 0o660, group: 4242), service: FakeManagerService(),
                                                  access: AccessPolicy(controlGroup: 4242), info: TestServer.info)
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o7777 == 0o660)
        #expect(info.st_gid == 4242)
        #expect(server.socketPath == path)
        let running = Task { try await server.run() }
        try await VarlinkClient.withConnection(socketPath: path) { try await ManagerClient($0).ping() }
        running.cancel()
        try await running.value
        #expect(!FileManager.default.fileExists(atPath: path), "the server removes the socket file it made when it stops")
    }

    @Test func aStaleSocketIsReplacedButALiveOneOrAFileIsNot() async throws {
        try await TestServer.with { live in
            await #expect(throws: ControlSocketError.alreadyServed(path: live.socketPath)) {
                _ = try await ControlServer.bind(.path(live.socketPath), service: FakeManagerService(),
                                                 access: AccessPolicy(controlGroup: nil), info: TestServer.info)
            }
            try await live.withClient { try await $0.ping() }
        }
        let directory = try TemporaryDirectory()
        let stale = directory.file("stale.sock")
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try bindUnixSocket(descriptor, stale)
        close(descriptor)  // bound, never listened, owner gone: a stale file
        let server = try await ControlServer.bind(.path(stale), service: FakeManagerService(),
                                                  access: AccessPolicy(controlGroup: nil), info: TestServer.info)
        let running = Task { try await server.run() }
        try await VarlinkClient.withConnection(socketPath: stale) { try await ManagerClient($0).ping() }
        running.cancel()
        try await running.value

        let regular = directory.file("notes.txt")
        try "keep me".write(toFile: regular, atomically: false, encoding: .utf8)
        await #expect(throws: ControlSocketError.notASocket(path: regular)) {
            _ = try await ControlServer.bind(.path(regular), service: FakeManagerService(),
                                             access: AccessPolicy(controlGroup: nil), info: TestServer.info)
        }
        #expect(try String(contentsOfFile: regular, encoding: .utf8) == "keep me")
    }

    @Test func anInheritedListeningSocketIsServedAsSystemdHandsItOver() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("activated.sock")
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try bindUnixSocket(descriptor, path)
        #expect(listen(descriptor, 16) == 0)
        let server = try await ControlServer.bind(.inherited(descriptor: descriptor), service: FakeManagerService(),
                                                  access: AccessPolicy(controlGroup: nil), info: TestServer.info)
        #expect(server.socketPath == nil)
        let running = Task { try await server.run() }
        let status = try await VarlinkClient.withConnection(socketPath: path) { try await ManagerClient($0).status() }
        #expect(status.kernel == "Haswell")
        running.cancel()
        try await running.value
        #expect(FileManager.default.fileExists(atPath: path), "systemd owns an inherited socket's file")

        let unlistened = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(unlistened) }
        await #expect(throws: ControlSocketError.self) {
            _ = try await ControlServer.bind(.inherited(descriptor: unlistened), service: FakeManagerService(),
                                             access: AccessPolicy(controlGroup: nil), info: TestServer.info)
        }
    }

    // MARK: - Calls

    @Test func theTypedClientCallsEveryMethod() async throws {
        try await TestServer.with { server in
            try await server.withClient { client in
                let (info, interfaces) = try await client.info()
                #expect(info == TestServer.info && interfaces == ["org.varlink.service", "io.losa.Manager"])
                #expect(try await client.interfaceDescription("io.losa.Manager") == ManagerInterface.interfaceDefinition)
                try await client.ping()
                #expect(try await client.status().running.map(\.id) == [2])
                #expect(try await client.listJobs().jobs.map(\.id) == [4, 3, 2, 1])
                #expect(try await client.listJobs(ListJobsParameters(state: .failed)).jobs.map(\.id) == [4])
                #expect(try await client.listJobs(ListJobsParameters(limit: 2)).jobs.map(\.id) == [4, 3])
                #expect(try await client.getJob(id: 1).figures.parameterCount == 134_515_008)
                #expect(try await client.submit(SubmitParameters(path: "/m/new.gguf", sparsity: 0.7)).job.settings.sparsity == 0.7)
                #expect(try await client.cancel(id: 2).job.state == .cancelled)
                #expect(try await client.retry(id: 4).job.state == .queued)
                #expect(try await client.pause().state == .paused)
                #expect(try await client.status().state == .paused)
                #expect(try await client.resume().state == .running)
                try await client.reload()
                #expect(try await client.metrics().metrics.map(\.name) == ["losad_jobs", "losad_compressed_bytes_total"])
                var updates: [WatchReply] = []
                try await client.watch(id: 2) { updates.append($0) }
                #expect(updates.count == 7 && updates.last?.job.state == .succeeded)
                do {
                    _ = try await client.getJob(id: 99)
                    Issue.record("job 99 was found")
                } catch let error as VarlinkError {
                    #expect(ManagerError(error) == .jobNotFound(id: 99))
                }
                try await client.ping()  // an error reply leaves the connection usable
            }
            #expect(server.service.callers.allSatisfy { $0.uid == getuid() && $0.pid == getpid() },
                    "the daemon sees the caller's credentials")
        }
    }

    @Test func pipelinedCallsAreAnsweredInOrderAndOnewayCallsNotAtAll() async throws {
        try await TestServer.with { server in
            let client = try RawClient(path: server.socketPath)
            #expect(client.send(#"{"method":"io.losa.Manager.GetJob","parameters":{"id":3}}"# + "\0"
                                + #"{"method":"io.losa.Manager.Pause","oneway":true}"# + "\0"
                                + #"{"method":"io.losa.Manager.GetJob","parameters":{"id":99}}"# + "\0"
                                + #"{"method":"io.losa.Manager.Status"}"#))
            let first = await client.receive(timeout: 3)
            guard case .message(let text) = first else { Issue.record("\(first)"); return }
            #expect(text.contains(#""id":3"#))
            #expect(await client.receive(timeout: 3) == .message(#"{"error":"io.losa.Manager.JobNotFound","parameters":{"id":99}}"#))
            guard case .message(let status) = await client.receive(timeout: 3) else { Issue.record("no status"); return }
            #expect(status.contains(#""state":"paused""#), "the oneway Pause ran")
        }
    }

    // MARK: - Robustness

    @Test func malformedJSONClosesThatConnectionOnly() async throws {
        try await TestServer.with { server in
            for garbage in ["{\"method\": ", "[]", "\u{1}\u{2}binary", #"{"parameters":{}}"#, #"{"method":["x"]}"#] {
                let client = try RawClient(path: server.socketPath)
                client.send(garbage)
                #expect(await client.receive(timeout: 3) == .closed, "\(garbage)")
            }
            try await server.withClient { try await $0.ping() }
        }
    }

    @Test func aMessageWithoutItsNulIsNeverAnsweredAndTheClientIsDropped() async throws {
        try await TestServer.with(configuration: .init(idleTimeout: .milliseconds(300))) { server in
            let client = try RawClient(path: server.socketPath)
            client.send(#"{"method":"io.losa.Manager.Ping"}"#, terminated: false)
            let started = Date()
            #expect(await client.receive(timeout: 8) == .closed)
            let waited = Date().timeIntervalSince(started)
            #expect(waited >= 0.25 && waited < 6, "dropped after the idle timeout, not before (\(waited) s)")
            try await server.withClient { try await $0.ping() }
        }
    }

    @Test func aClientThatSendsNothingIsDroppedAfterTheIdleTimeout() async throws {
        try await TestServer.with(configuration: .init(idleTimeout: .milliseconds(800))) { server in
            let silent = try RawClient(path: server.socketPath)
            let started = Date()
            // A busy client's calls restart the timer: it outlives the timeout by far.
            try await server.withClient { client in
                while Date().timeIntervalSince(started) < 1.6 {
                    try await Task.sleep(for: .milliseconds(50))
                    try await client.ping()
                }
            }
            #expect(await silent.receive(timeout: 3) == .closed)
            #expect(await server.eventually { server.server.connectionCount == 0 })
        }
    }

    @Test func aSlowlyDrippedMessageDoesNotKeepTheConnectionAlive() async throws {
        try await TestServer.with(configuration: .init(idleTimeout: .milliseconds(300))) { server in
            let client = try RawClient(path: server.socketPath)
            let padding = String(repeating: "x", count: 200)
            let message = Array(#"{"method":"io.losa.Manager.Ping","parameters":{"padding":"\#(padding)"}}"#.utf8) + [0]
            // A byte every 20 ms would take over 5 s; bytes do not restart the idle timer, calls do.
            var sent = 0
            while sent < message.count, client.send([message[sent]]) {
                sent += 1
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(sent < message.count, "the server was still reading after \(sent) bytes")
            #expect(await client.receive(timeout: 8) == .closed)
        }
    }

    @Test func unknownMethodsInterfacesAndBadParametersGetErrorsAndTheConnectionGoesOn() async throws {
        try await TestServer.with { server in
            let client = try RawClient(path: server.socketPath)
            let cases = [
                (#"{"method":"io.losa.Manager.Explode"}"#,
                 #"{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"io.losa.Manager.Explode"}}"#),
                (#"{"method":"com.example.Nothing.Here"}"#,
                 #"{"error":"org.varlink.service.InterfaceNotFound","parameters":{"interface":"com.example.Nothing"}}"#),
                (#"{"method":"io.losa.Manager.GetJob","parameters":{"id":"one"}}"#,
                 #"{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"id"}}"#),
                (#"{"method":"io.losa.Manager.GetJob","parameters":{}}"#,
                 #"{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"id"}}"#),
                (#"{"method":"io.losa.Manager.ListJobs","parameters":{"state":7}}"#,
                 #"{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"state"}}"#),
                (#"{"method":"io.losa.Manager.Submit","parameters":{"path":["/a"]}}"#,
                 #"{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"path"}}"#),
                (#"{"method":"io.losa.Manager.Ping"}"#, #"{"parameters":{}}"#),
            ]
            for (call, expected) in cases {
                client.send(call)
                #expect(await client.receive(timeout: 3) == .message(expected), "\(call)")
            }
        }
    }

    @Test func aMessageOverTheSizeLimitIsDropped() async throws {
        try await TestServer.with(configuration: .init(maximumMessageBytes: 1024, idleTimeout: .seconds(5))) { server in
            let client = try RawClient(path: server.socketPath)
            let padding = String(repeating: "a", count: 2000)
            client.send(#"{"method":"io.losa.Manager.Ping","parameters":{"x":"\#(padding)"}}"#)
            #expect(await client.receive(timeout: 3) == .closed)
            // The limit holds without a NUL too: the server stops buffering at once.
            let endless = try RawClient(path: server.socketPath)
            endless.send(Array(repeating: UInt8(ascii: "a"), count: 4096))
            #expect(await endless.receive(timeout: 3) == .closed)
            try await server.withClient { try await $0.ping() }
        }
    }

    @Test func aClientThatDisconnectsMidStreamStopsItsWatch() async throws {
        let service = FakeManagerService(watchInterval: .milliseconds(20))
        try await TestServer.with(service: service) { server in
            let client = try RawClient(path: server.socketPath)
            client.send(#"{"method":"io.losa.Manager.Watch","parameters":{"id":3},"more":true}"#)
            for _ in 0..<3 {
                guard case .message(let text) = await client.receive(timeout: 3) else { Issue.record("no update"); return }
                #expect(text.contains(#""continues":true"#))
            }
            #expect(service.openWatches == 1)
            client.close()
            #expect(await server.eventually { service.openWatches == 0 }, "the daemon's watch ends when its client leaves")
            #expect(await server.eventually { server.server.connectionCount == 0 })
            try await server.withClient { try await $0.ping() }
        }
    }

    @Test func connectionsBeyondTheLimitAreClosed() async throws {
        try await TestServer.with(configuration: .init(idleTimeout: .seconds(5), maximumConnections: 2)) { server in
            let first = try RawClient(path: server.socketPath), second = try RawClient(path: server.socketPath)
            #expect(await server.eventually { server.server.connectionCount == 2 })
            let third = try RawClient(path: server.socketPath)
            third.send(#"{"method":"io.losa.Manager.Ping"}"#)
            #expect(await third.receive(timeout: 3) == .closed)
            first.send(#"{"method":"io.losa.Manager.Ping"}"#)
            #expect(await first.receive(timeout: 3) == .message(#"{"parameters":{}}"#))
            withExtendedLifetime(second) {}
        }
    }

    @Test func fiftyClientsMakingTwoThousandCallsAllGetTheirOwnAnswers() async throws {
        try await TestServer.with { server in
            let started = Date()
            let correct = try await withThrowingTaskGroup(of: Int.self) { group in
                for clientIndex in 0..<50 {
                    group.addTask {
                        try await server.withClient { client in
                            var correct = 0
                            for call in 0..<40 {
                                // Each client asks for a different sequence, so a crossed reply would show.
                                let id = (clientIndex + call) % 4 + 1
                                switch call % 4 {
                                case 0: if try await client.getJob(id: id).job.id == id { correct += 1 }
                                case 1: if try await client.status().running.first?.id == 2 { correct += 1 }
                                case 2:
                                    let state = JobState.allCases[(clientIndex + call) % JobState.allCases.count]
                                    let jobs = try await client.listJobs(ListJobsParameters(state: state)).jobs
                                    if jobs.allSatisfy({ $0.state == state }) && jobs.count == FakeManagerService.jobs.filter({ $0.state == state }).count {
                                        correct += 1
                                    }
                                default:
                                    do {
                                        _ = try await client.getJob(id: 100 + clientIndex)
                                    } catch let error as VarlinkError where ManagerError(error) == .jobNotFound(id: 100 + clientIndex) {
                                        correct += 1
                                    }
                                }
                            }
                            return correct
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(correct == 2000)
            print("2000 calls from 50 concurrent clients: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            #expect(await server.eventually { server.server.connectionCount == 0 }, "no connection outlives its client")
        }
    }
}

/// Binds `descriptor` to the Unix socket `path`.
func bindUnixSocket(_ descriptor: Int32, _ path: String) throws {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
}
