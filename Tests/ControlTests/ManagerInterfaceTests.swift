import Control
import Foundation
import Testing

/// Dispatch of calls to `org.varlink.service` and `io.losa.Manager`, without a socket.
@Suite struct ManagerInterfaceTests {
    static let root = PeerCredentials(pid: 1, uid: 0, gid: 0, groups: [])
    static let stranger = PeerCredentials(pid: 2, uid: 65534, gid: 65534, groups: [100])
    static let member = PeerCredentials(pid: 3, uid: 1000, gid: 1000, groups: [27, 4242])

    func dispatcher(_ service: FakeManagerService = FakeManagerService(),
                    access: AccessPolicy = AccessPolicy(daemonUID: 990, controlGroup: 4242, controlGroupName: "losad")) -> VarlinkDispatcher {
        VarlinkDispatcher(info: TestServer.info, interfaces: [ManagerInterface(service: service, access: access)])
    }

    /// The one reply to `message` (a stream is read to its end).
    func reply(_ message: String, from caller: PeerCredentials = root, dispatcher: VarlinkDispatcher? = nil) async throws -> [String] {
        let call = try VarlinkCall(message: Data(message.utf8))
        switch await (dispatcher ?? self.dispatcher()).handle(call, caller: caller) {
        case .reply(let data): return [String(decoding: data, as: UTF8.self)]
        case .error(let error): return [String(decoding: try VarlinkReply.encode(error), as: UTF8.self)]
        case .stream(let stream):
            var replies: [String] = []
            for await item in stream {
                switch item {
                case .reply(let data, _): replies.append(String(decoding: data, as: UTF8.self))
                case .error(let error): replies.append(String(decoding: try VarlinkReply.encode(error), as: UTF8.self))
                }
            }
            return replies
        }
    }

    func errorName(_ replies: [String]) throws -> String? {
        try jsonObject(try #require(replies.last))["error"] as? String
    }

    @Test func theServedDefinitionIsTheCommittedInterfaceFile() throws {
        let file = try String(contentsOfFile: TestEnvironment.repositoryRoot + "/Sources/Control/io.losa.Manager.varlink", encoding: .utf8)
        #expect(ManagerInterface.interfaceDefinition == file)
        #expect(file.hasPrefix("# losad compresses") && file.contains("interface io.losa.Manager\n"))
    }

    @Test func getInfoListsBothInterfaces() async throws {
        let replies = try await reply(#"{"method":"org.varlink.service.GetInfo"}"#)
        let parameters = try #require(try jsonObject(replies[0])["parameters"] as? [String: Any])
        #expect(parameters["interfaces"] as? [String] == ["org.varlink.service", "io.losa.Manager"])
        #expect(parameters["product"] as? String == "losad" && parameters["vendor"] as? String == "losa")
    }

    @Test func getInterfaceDescriptionReturnsEachDefinitionVerbatim() async throws {
        for (name, definition) in [("io.losa.Manager", ManagerInterface.interfaceDefinition),
                                   ("org.varlink.service", VarlinkDispatcher.serviceDefinition)] {
            let replies = try await reply(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"\#(name)"}}"#)
            let parameters = try #require(try jsonObject(replies[0])["parameters"] as? [String: Any])
            #expect(parameters["description"] as? String == definition)
        }
        let missing = try await reply(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"com.example.Nope"}}"#)
        #expect(missing == [#"{"error":"org.varlink.service.InterfaceNotFound","parameters":{"interface":"com.example.Nope"}}"#])
    }

    @Test func unknownInterfacesAndMethodsGetTheStandardErrors() async throws {
        #expect(try await reply(#"{"method":"com.example.Thing.Do"}"#)
                == [#"{"error":"org.varlink.service.InterfaceNotFound","parameters":{"interface":"com.example.Thing"}}"#])
        #expect(try await reply(#"{"method":"io.losa.Manager.Explode"}"#)
                == [#"{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"io.losa.Manager.Explode"}}"#])
        #expect(try await reply(#"{"method":"org.varlink.service.Nope"}"#)
                == [#"{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"org.varlink.service.Nope"}}"#])
        #expect(try await reply(#"{"method":"Status"}"#)
                == [#"{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"Status"}}"#])
        #expect(try await reply(#"{"method":"io.losa.Manager.Status","upgrade":true}"#)
                == [#"{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"upgrade"}}"#])
    }

    @Test func everyMethodTheInterfaceDeclaresIsServed() async throws {
        let methods = ManagerInterface.interfaceDefinition.split(separator: "\n")
            .filter { $0.hasPrefix("method ") }
            .map { String($0.dropFirst("method ".count).prefix { $0 != "(" }) }
        #expect(methods.count == 12)
        let parameters = ["GetJob": #"{"id":1}"#, "Cancel": #"{"id":2}"#, "Retry": #"{"id":4}"#, "Watch": #"{"id":1}"#,
                          "Submit": #"{"path":"/m/x.gguf"}"#]
        for method in methods {
            let replies = try await reply(#"{"method":"io.losa.Manager.\#(method)","parameters":\#(parameters[method] ?? "{}"),"more":true}"#)
            #expect(try errorName(replies) == nil, "\(method): \(replies)")
        }
    }

    @Test func stateChangesNeedRootTheDaemonUserOrTheGroup() async throws {
        let service = FakeManagerService()
        let dispatcher = dispatcher(service)
        let daemonUser = PeerCredentials(pid: 4, uid: 990, gid: 990, groups: [])
        let primaryMember = PeerCredentials(pid: 5, uid: 1001, gid: 4242, groups: [])
        for caller in [Self.root, daemonUser, Self.member, primaryMember] {
            #expect(try errorName(try await reply(#"{"method":"io.losa.Manager.Pause"}"#, from: caller, dispatcher: dispatcher)) == nil, "\(caller)")
        }
        let calls = [#"{"method":"io.losa.Manager.Submit","parameters":{"path":"/m/x.gguf"}}"#,
                     #"{"method":"io.losa.Manager.Cancel","parameters":{"id":2}}"#,
                     #"{"method":"io.losa.Manager.Retry","parameters":{"id":4}}"#,
                     #"{"method":"io.losa.Manager.Pause"}"#, #"{"method":"io.losa.Manager.Resume"}"#,
                     #"{"method":"io.losa.Manager.Reload"}"#]
        let before = service.calls.count
        for call in calls {
            let replies = try await reply(call, from: Self.stranger, dispatcher: dispatcher)
            let object = try jsonObject(replies[0])
            #expect(object["error"] as? String == "io.losa.Manager.PermissionDenied", "\(call)")
            let parameters = try #require(object["parameters"] as? [String: Any])
            #expect(parameters["uid"] as? Int == 65534 && parameters["group"] as? String == "losad")
        }
        #expect(service.calls.count == before, "a refused call never reaches the daemon")
        for call in [#"{"method":"io.losa.Manager.Status"}"#, #"{"method":"io.losa.Manager.ListJobs"}"#,
                     #"{"method":"io.losa.Manager.GetJob","parameters":{"id":1}}"#, #"{"method":"io.losa.Manager.Metrics"}"#,
                     #"{"method":"io.losa.Manager.Watch","parameters":{"id":1},"more":true}"#] {
            #expect(try errorName(try await reply(call, from: Self.stranger, dispatcher: dispatcher)) == nil, "\(call)")
        }
    }

    @Test func withoutAControlGroupOnlyRootAndTheDaemonUserMayChangeState() {
        let policy = AccessPolicy(daemonUID: 990, controlGroup: nil)
        #expect(policy.mayChangeState(Self.root))
        #expect(policy.mayChangeState(PeerCredentials(pid: 1, uid: 990, gid: 1, groups: [])))
        #expect(!policy.mayChangeState(Self.member))
        #expect(AccessPolicy(daemonUID: 990, controlGroup: 27).mayChangeState(Self.member), "a supplementary group counts")
    }

    @Test func watchMustBeCalledWithMore() async throws {
        #expect(try await reply(#"{"method":"io.losa.Manager.Watch","parameters":{"id":2}}"#)
                == [#"{"error":"org.varlink.service.ExpectedMore","parameters":{}}"#])
    }

    @Test func watchStreamsUntilTheJobEnds() async throws {
        let service = FakeManagerService(watchSteps: 4, watchInterval: .milliseconds(1))
        let replies = try await reply(#"{"method":"io.losa.Manager.Watch","parameters":{"id":2},"more":true}"#,
                                      dispatcher: dispatcher(service))
        #expect(replies.count == 6, "the job as it is, 4 progress events, the end")
        let objects = try replies.map(jsonObject)
        #expect(objects.dropLast().allSatisfy { $0["continues"] as? Bool == true })
        #expect(objects.last?["continues"] == nil)
        let last = try #require((objects.last?["parameters"] as? [String: Any])?["job"] as? [String: Any])
        #expect(last["state"] as? String == "succeeded")
        #expect(await TestServer.eventuallyTrue { service.openWatches == 0 })
    }

    @Test func submitChecksWhatTheInterfacePromises() async throws {
        let service = FakeManagerService()
        let dispatcher = dispatcher(service)
        // The settings' values are the daemon's to check (InvalidSetting); the interface checks the path.
        for (parameters, name) in [(#"{"path":"relative/x.gguf"}"#, "path"), (#"{"path":""}"#, "path"), (#"{"sparsity":0.5}"#, "path"),
                                   (#"{"path":"/x.gguf","method":"guess"}"#, "method")] {
            let replies = try await reply(#"{"method":"io.losa.Manager.Submit","parameters":\#(parameters)}"#, dispatcher: dispatcher)
            #expect(replies == [#"{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"\#(name)"}}"#], "\(parameters)")
        }
        #expect(service.submitted.isEmpty)
        let replies = try await reply(#"{"method":"io.losa.Manager.Submit","parameters":{"path":"/m/x.gguf","sparsity":0.7,"pattern":"2:4"}}"#,
                                      dispatcher: dispatcher)
        #expect(try errorName(replies) == nil)
        #expect(service.submitted == [SubmitParameters(path: "/m/x.gguf", sparsity: 0.7, pattern: "2:4")])
    }

    @Test func anUnexpectedDaemonErrorIsAnInternalError() async throws {
        struct DiskFull: Error, CustomStringConvertible { var description: String { "no space left on /var/lib/losad" } }
        final class Failing: ManagerService {
            func status(caller: PeerCredentials) async throws -> StatusReply { throw DiskFull() }
            func listJobs(_ parameters: ListJobsParameters, caller: PeerCredentials) async throws -> ListJobsReply { throw DiskFull() }
            func getJob(id: Int, caller: PeerCredentials) async throws -> GetJobReply { throw DiskFull() }
            func submit(_ parameters: SubmitParameters, caller: PeerCredentials) async throws -> JobReply { throw DiskFull() }
            func cancel(id: Int, caller: PeerCredentials) async throws -> JobReply { throw DiskFull() }
            func retry(id: Int, caller: PeerCredentials) async throws -> JobReply { throw DiskFull() }
            func pause(caller: PeerCredentials) async throws -> QueueReply { throw DiskFull() }
            func resume(caller: PeerCredentials) async throws -> QueueReply { throw DiskFull() }
            func reload(caller: PeerCredentials) async throws { throw DiskFull() }
            func watch(id: Int?, caller: PeerCredentials) async throws -> AsyncThrowingStream<WatchReply, any Error> {
                AsyncThrowingStream { $0.finish(throwing: DiskFull()) }
            }
            func metrics(caller: PeerCredentials) async throws -> MetricsReply { throw DiskFull() }
        }
        let dispatcher = VarlinkDispatcher(info: TestServer.info,
                                           interfaces: [ManagerInterface(service: Failing(), access: AccessPolicy(controlGroup: nil))])
        let expected = #"{"error":"io.losa.Manager.InternalError","parameters":{"message":"no space left on /var/lib/losad"}}"#
        #expect(try await reply(#"{"method":"io.losa.Manager.Status"}"#, dispatcher: dispatcher) == [expected])
        #expect(try await reply(#"{"method":"io.losa.Manager.Watch","more":true}"#, dispatcher: dispatcher) == [expected])
    }
}

extension TestServer {
    /// Waits up to three seconds for `condition`.
    static func eventuallyTrue(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<300 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}

extension ManagerInterfaceTests {
    @Test func aOnewayWatchSubscribesToNothing() async throws {
        let service = FakeManagerService()
        let replies = try await reply(#"{"method":"io.losa.Manager.Watch","parameters":{"id":3},"oneway":true}"#,
                                      dispatcher: dispatcher(service))
        #expect(replies == [#"{"parameters":{}}"#])
        #expect(service.openWatches == 0 && !service.calls.contains("Watch"))
    }
}
