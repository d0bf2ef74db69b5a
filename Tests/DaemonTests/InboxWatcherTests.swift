#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
@testable import Daemon

/// Collects a watcher's events with the monotonic time each arrived.
final class EventLog: Sendable {
    private let entries = Mutex<[(event: InboxEvent, at: Double)]>([])

    func append(_ event: InboxEvent) { entries.withLock { $0.append((event, MonotonicClock.seconds())) } }

    var events: [InboxEvent] { entries.withLock { $0.map(\.event) } }
    var timed: [(event: InboxEvent, at: Double)] { entries.withLock { $0 } }

    var readyNames: [String] {
        events.compactMap { if case .ready(let c) = $0 { return c.name } else { return nil } }
    }

    /// Waits until `condition` holds or `timeout` seconds pass; returns whether it held.
    func wait(timeout: Double = 5, until condition: ([InboxEvent]) -> Bool) async -> Bool {
        let deadline = MonotonicClock.seconds() + timeout
        while MonotonicClock.seconds() < deadline {
            if condition(events) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(events)
    }
}

@Suite("InboxWatcher")
struct InboxWatcherTests {
    struct Harness {
        let root: URL
        let inbox: URL
        let watcher: InboxWatcher
        let log: EventLog

        func path(_ name: String) -> String { inbox.appendingPathComponent(name).path }

        func write(_ name: String, bytes count: Int, seed: Int = 0) throws {
            try Data((0..<count).map { UInt8(($0 &* 13 &+ seed) % 256) }).write(to: URL(fileURLWithPath: path(name)))
        }
    }

    /// Runs `body` with a watcher on a fresh temporary inbox, then stops it.
    func withWatcher(settle: Double, rescan: Double = 60, createInbox: Bool = true, before: (URL) throws -> Void = { _ in },
                     _ body: (Harness) async throws -> Void) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("inbox-test-\(UUID().uuidString)")
        let inbox = root.appendingPathComponent("inbox")
        try FileManager.default.createDirectory(at: createInbox ? inbox : root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try before(inbox)
        let watcher = InboxWatcher(inbox: inbox.path, settleSeconds: settle, rescanSeconds: rescan)
        let log = EventLog()
        let collector = Task { for await event in watcher.events { log.append(event) } }
        let running = Task { await watcher.run() }
        try await body(Harness(root: root, inbox: inbox, watcher: watcher, log: log))
        running.cancel()
        await running.value
        await collector.value   // the stream finishes when run() returns
    }

    @Test("a new file is offered once, after the settle time, with its size and SHA-256")
    func newFile() async throws {
        try await withWatcher(settle: 0.3) { h in
            try await Task.sleep(for: .milliseconds(50))
            let written = MonotonicClock.seconds()
            try h.write("tiny.gguf", bytes: 100_000)
            #expect(await h.log.wait { !$0.isEmpty })
            let (event, at) = try #require(h.log.timed.first)
            guard case .ready(let candidate) = event else { Issue.record("not ready: \(event)"); return }
            #expect(candidate == InboxCandidate(path: h.path("tiny.gguf"), name: "tiny.gguf", format: .gguf, sizeBytes: 100_000,
                                                contentHash: try ContentHash.file(h.path("tiny.gguf"))))
            #expect(at - written >= 0.3)
            try await Task.sleep(for: .milliseconds(500))
            #expect(h.log.events.count == 1)
        }
    }

    @Test("a file copied slowly in chunks is not picked up half-written")
    func slowCopy() async throws {
        let chunk = 64 << 10, chunks = 6
        try await withWatcher(settle: 0.8) { h in
            let handle = try #require(FileHandle(forWritingAtPath: { FileManager.default.createFile(atPath: h.path("slow.gguf"), contents: nil); return h.path("slow.gguf") }()))
            var lastWrite = 0.0
            for index in 0..<chunks {
                try handle.write(contentsOf: Data(repeating: UInt8(index), count: chunk))
                lastWrite = MonotonicClock.seconds()
                try await Task.sleep(for: .milliseconds(200))
                #expect(h.log.events.isEmpty, "offered after \(index + 1) of \(chunks) chunks")
            }
            try handle.close()
            #expect(await h.log.wait { !$0.isEmpty })
            let (event, at) = try #require(h.log.timed.first)
            guard case .ready(let candidate) = event else { Issue.record("not ready: \(event)"); return }
            #expect(candidate.sizeBytes == Int64(chunk * chunks))
            #expect(candidate.contentHash == (try ContentHash.file(h.path("slow.gguf"))))
            #expect(at - lastWrite >= 0.8 * 0.95)
        }
    }

    @Test("a file renamed into the inbox is taken; under its .part name it was not")
    func renameIn() async throws {
        try await withWatcher(settle: 0.2) { h in
            try h.write("model.gguf.part", bytes: 10_000)
            let outside = h.root.appendingPathComponent("elsewhere.gguf")
            try Data(repeating: 7, count: 5_000).write(to: outside)
            try await Task.sleep(for: .milliseconds(500))
            #expect(h.log.events.isEmpty)
            #expect(rename(h.path("model.gguf.part"), h.path("model.gguf")) == 0)
            #expect(rename(outside.path, h.path("moved.gguf")) == 0)
            #expect(await h.log.wait { $0.count == 2 })
            #expect(Set(h.log.readyNames) == ["model.gguf", "moved.gguf"])
        }
    }

    @Test("hidden, temporary and non-model names are ignored")
    func ignoredNames() async throws {
        #expect(InboxWatcher.isIgnoredName(".hidden.gguf") && InboxWatcher.isIgnoredName("a.gguf.tmp")
                && InboxWatcher.isIgnoredName("a.gguf~") && InboxWatcher.isIgnoredName("a.gguf.part")
                && !InboxWatcher.isIgnoredName("a.gguf"))
        try await withWatcher(settle: 0.2) { h in
            for name in [".hidden.gguf", "a.gguf.tmp", "b.gguf~", "c.gguf.part", "notes.txt"] { try h.write(name, bytes: 1000) }
            try FileManager.default.createDirectory(atPath: h.path("not-a-model"), withIntermediateDirectories: false)
            try h.write("real.gguf", bytes: 1000)
            #expect(await h.log.wait { !$0.isEmpty })
            try await Task.sleep(for: .milliseconds(400))
            #expect(h.log.readyNames == ["real.gguf"] && h.log.events.count == 1)
        }
    }

    @Test("a symlink out of the inbox is refused once; one that stays inside is taken")
    func symlinks() async throws {
        try await withWatcher(settle: 0.2) { h in
            let outside = h.root.appendingPathComponent("outside.gguf")
            try Data(repeating: 1, count: 1000).write(to: outside)
            #expect(symlink(outside.path, h.path("link.gguf")) == 0)
            try h.write("inner.gguf", bytes: 2000)
            #expect(symlink(h.path("inner.gguf"), h.path("alias.gguf")) == 0)
            #expect(await h.log.wait { $0.count == 3 })
            h.watcher.requestRescan()
            try await Task.sleep(for: .milliseconds(400))
            let refused = h.log.events.compactMap { if case .refused(let path, let reason) = $0 { return (path, reason) } else { return nil } }
            #expect(refused.count == 1)
            #expect(refused.first?.0 == h.path("link.gguf"))
            #expect(refused.first?.1.contains("outside the inbox") == true)
            #expect(Set(h.log.readyNames) == ["inner.gguf", "alias.gguf"])
        }
    }

    @Test("files and folders present before the start are found by the initial scan")
    func preexisting() async throws {
        try await withWatcher(settle: 0.2, before: { inbox in
            try Data(repeating: 3, count: 4000).write(to: inbox.appendingPathComponent("old.gguf"))
            let folder = inbox.appendingPathComponent("hf-model")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
            try Data("{}".utf8).write(to: folder.appendingPathComponent("config.json"))
            try Data(repeating: 4, count: 3000).write(to: folder.appendingPathComponent("model.safetensors"))
            try Data("ignored".utf8).write(to: folder.appendingPathComponent(".gitattributes"))
        }) { h in
            #expect(await h.log.wait { $0.count == 2 })
            let folder = try #require(h.log.events.compactMap { if case .ready(let c) = $0, c.format == .huggingFace { return c } else { return nil } }.first)
            #expect(folder.name == "hf-model" && folder.sizeBytes == 3002)
            #expect(folder.contentHash == (try ContentHash.folder(h.path("hf-model"), files: ["config.json", "model.safetensors"])))
            #expect(h.log.readyNames.contains("old.gguf"))
        }
    }

    @Test("a Hugging Face folder is taken only once its weights are complete")
    func folderCompletes() async throws {
        try await withWatcher(settle: 0.2) { h in
            let folder = h.path("hf")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            try Data("{}".utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
            try Data(repeating: 5, count: 1000).write(to: URL(fileURLWithPath: folder + "/model.safetensors.part"))
            try await Task.sleep(for: .milliseconds(600))
            #expect(h.log.events.isEmpty)
            #expect(rename(folder + "/model.safetensors.part", folder + "/model.safetensors") == 0)
            h.watcher.requestRescan()   // a change inside a folder raises no event on the inbox itself
            #expect(await h.log.wait { !$0.isEmpty })
            #expect(h.log.readyNames == ["hf"])
        }
    }

    @Test("a file replaced with other bytes is offered again with its new hash")
    func replaced() async throws {
        try await withWatcher(settle: 0.2) { h in
            try h.write("m.gguf", bytes: 1000, seed: 1)
            #expect(await h.log.wait { $0.count == 1 })
            try h.write("m.gguf.tmp", bytes: 1000, seed: 2)
            #expect(rename(h.path("m.gguf.tmp"), h.path("m.gguf")) == 0)
            #expect(await h.log.wait { $0.count == 2 })
            let hashes = h.log.events.compactMap { if case .ready(let c) = $0 { return c.contentHash } else { return nil } }
            #expect(hashes.count == 2 && hashes[0] != hashes[1])
        }
    }

    @Test("an inbox that appears after the start is watched once it exists")
    func inboxAppearsLater() async throws {
        try await withWatcher(settle: 0.2, rescan: 0.3, createInbox: false) { h in
            try await Task.sleep(for: .milliseconds(300))
            try FileManager.default.createDirectory(at: h.inbox, withIntermediateDirectories: false)
            try h.write("late.gguf", bytes: 500)
            #expect(await h.log.wait { !$0.isEmpty })
            #expect(h.log.readyNames == ["late.gguf"])
        }
    }
}

@Suite("InboxWatcher without a task")
struct InboxWatcherThreadTests {
    @Test("start(onEvent:) hands each event to the callback on the watcher's own thread, and stop() ends the thread and the event stream")
    func startAndStop() async throws {
        let inbox = FileManager.default.temporaryDirectory.appendingPathComponent("losad-inbox-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        try Data("model bytes".utf8).write(to: URL(fileURLWithPath: inbox + "/m.gguf"))
        let seen = Mutex<[(InboxEvent, pid_t)]>([])
        let before = Set(try ComputePriority.threadIDs())
        let watcher = InboxWatcher(inbox: inbox, settleSeconds: 0.1, rescanSeconds: 1)
        watcher.start { event in seen.withLock { $0.append((event, ComputePriority.currentThreadID())) } }
        let deadline = Date().addingTimeInterval(5)
        while seen.withLock({ $0.isEmpty }) && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let first = try #require(seen.withLock { $0.first })
        guard case .ready(let candidate) = first.0 else { Issue.record("not ready: \(first.0)"); return }
        #expect(candidate.name == "m.gguf" && candidate.contentHash == SHA256.hex({ var h = SHA256(); h.update(Array("model bytes".utf8)); return h.finalize() }()))
        #expect(!before.contains(first.1), "called on a thread started for the watcher, not on one that existed before")
        #expect(watcher.stop(timeout: 2))
        var afterStop = 0
        for await _ in watcher.events { afterStop += 1 }   // ends: the stream was finished
        #expect(afterStop == 1, "the event was also in the stream")
    }
}
