import Control
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The PyPI `varlink` package, a client nobody here wrote, against the server
/// (scripts/varlink_probe.py; the python of scripts/python-env.sh).
@Suite struct PythonVarlinkTests {
    static let pythonMissing = "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh (it installs varlink)"

    @Test(.enabled(if: TestEnvironment.python != nil, Comment(rawValue: pythonMissing)))
    func theVarlinkPackageDiscoversAndCallsTheService() async throws {
        let python = try #require(TestEnvironment.python)
        try await TestServer.with { server in
            let result = try await runProcess(python, [TestEnvironment.probe, server.socketPath, "read"])
            try #require(result.status == 0, "\(result.error)")
            let report = try jsonObject(result.output)
            let info = try #require(report["info"] as? [String: Any])
            #expect(info["interfaces"] as? [String] == ["org.varlink.service", "io.losa.Manager"])
            #expect(info["product"] as? String == "losad")
            #expect(report["description"] as? String == ManagerInterface.interfaceDefinition)
            let status = try #require(report["status"] as? [String: Any])
            #expect(status["kernel"] as? String == "Haswell" && status["state"] as? String == "running")
            let watch = try #require(report["watch"] as? [[String: Any]])
            #expect(watch.count == 7, "the job as it was, five progress events, its end")
            let states = watch.compactMap { ($0["job"] as? [String: Any])?["state"] as? String }
            #expect(states == Array(repeating: "running", count: 6) + ["succeeded"])
            let missing = try #require(report["missing"] as? [String: Any])
            #expect(missing["error"] as? String == "io.losa.Manager.JobNotFound")
            #expect((missing["parameters"] as? [String: Any])?["id"] as? Int == 99)
            // Status, ListJobs, GetJob ×2, Metrics and 7 Watch replies, each checked against the interface.
            #expect(report["checkedReplies"] as? Int == 12)
            #expect(report["problems"] as? [String] == [], "replies that differ from io.losa.Manager.varlink")
        }
    }

    @Test(.enabled(if: TestEnvironment.python != nil && TestEnvironment.setpriv != nil && TestEnvironment.isRoot,
                   "needs root, setpriv and the test python"))
    func aCallerOutsideTheGroupCanReadButNotChangeState() async throws {
        let python = try #require(TestEnvironment.python), setpriv = try #require(TestEnvironment.setpriv)
        // The socket is open to all (0666) so that a stranger reaches it; the
        // control group, 4242, is one the stranger is not in.
        let access = AccessPolicy(daemonUID: getuid(), controlGroup: 4242, controlGroupName: "losad-operators")
        try await TestServer.with(access: access, mode: 0o666) { server in
            let stranger = try await runProcess(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                          python, TestEnvironment.probe, server.socketPath, "access"])
            try #require(stranger.status == 0, "\(stranger.error)")
            let report = try jsonObject(stranger.output)
            #expect(report["status"] as? String == "running" && report["jobs"] as? Int == 4, "reading is open")
            for method in ["submit", "cancel"] {
                let outcome = try #require(report[method] as? [String: Any])
                #expect(outcome["error"] as? String == "io.losa.Manager.PermissionDenied", "\(method)")
                let parameters = try #require(outcome["parameters"] as? [String: Any])
                #expect(parameters["uid"] as? Int == 65534 && parameters["group"] as? String == "losad-operators")
            }
            #expect(!server.service.calls.contains("Submit") && !server.service.calls.contains("Cancel"))
            #expect(server.service.callers.contains { $0.uid == 65534 && $0.gid == 65534 && $0.groups.isEmpty })

            // The same user with the control group as a supplementary group may.
            let member = try await runProcess(setpriv, ["--reuid=65534", "--regid=65534", "--groups=4242",
                                                        python, TestEnvironment.probe, server.socketPath, "access"])
            try #require(member.status == 0, "\(member.error)")
            let allowed = try jsonObject(member.output)
            for method in ["submit", "cancel"] {
                #expect((allowed[method] as? [String: Any])?["error"] is NSNull, "\(method): \(allowed)")
            }
            #expect(server.service.calls.contains("Submit") && server.service.calls.contains("Cancel"))
        }
    }
}
