import Control
import Foundation
import NIOCore
import NIOEmbedded
import Testing

/// The varlink wire format: NUL framing, call parsing, replies and errors.
@Suite struct VarlinkCodecTests {
    /// Feeds `chunks` to a frame decoder and returns the messages it emitted.
    func frames(_ chunks: [String], limit: Int = 64) throws -> [String] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VarlinkFrameDecoder(maximumBytes: limit)))
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(string: chunk))
        }
        var messages: [String] = []
        while let message = try channel.readInbound(as: ByteBuffer.self) {
            messages.append(String(buffer: message))
        }
        _ = try? channel.finish()
        return messages
    }

    @Test func messagesAreSplitAtNulWhateverTheReadBoundaries() throws {
        #expect(try frames(["{\"a\":1}\0{\"b\":2}\0"]) == ["{\"a\":1}", "{\"b\":2}"])
        #expect(try frames(["{\"a\"", ":1}\0{", "\"b\":2}", "\0"]) == ["{\"a\":1}", "{\"b\":2}"])
        #expect(try frames(["\0"]) == [""])
    }

    @Test func bytesWithoutNulAreNotAMessage() throws {
        #expect(try frames(["{\"method\":\"x.Y\"}"]) == [])
    }

    @Test func aMessageOverTheLimitIsAnErrorEvenBeforeItsNulArrives() throws {
        let long = String(repeating: "x", count: 65)
        #expect(throws: VarlinkProtocolError.messageTooLarge(bytes: 65, limit: 64)) { try frames([long]) }
        #expect(throws: VarlinkProtocolError.messageTooLarge(bytes: 65, limit: 64)) { try frames([long + "\0"]) }
        #expect(try frames([String(repeating: "x", count: 64) + "\0"]).count == 1)
    }

    @Test func aCallIsParsedWithItsFlags() throws {
        let call = try VarlinkCall(message: Data(#"{"method":"io.losa.Manager.Watch","parameters":{"id":2},"more":true}"#.utf8))
        #expect(call.method == "io.losa.Manager.Watch")
        #expect(call.interface == "io.losa.Manager" && call.member == "Watch")
        #expect(call.more && !call.oneway && !call.upgrade)
        #expect(try call.parameters(as: WatchParameters.self) == WatchParameters(id: 2))
    }

    @Test func absentOrNullParametersAreAnEmptyObject() throws {
        let absent = try VarlinkCall(message: Data(#"{"method":"io.losa.Manager.ListJobs"}"#.utf8))
        #expect(try absent.parameters(as: ListJobsParameters.self) == ListJobsParameters())
        let null = try VarlinkCall(message: Data(#"{"method":"io.losa.Manager.ListJobs","parameters":null}"#.utf8))
        #expect(try null.parameters(as: ListJobsParameters.self) == ListJobsParameters())
        #expect(throws: VarlinkServiceError.invalidParameter(parameter: "id")) {
            try absent.parameters(as: JobIDParameters.self)
        }
    }

    @Test func aMessageThatIsNotACallIsAProtocolError() {
        for text in ["{not json", "[1,2]", "\"text\"", #"{"parameters":{}}"#, #"{"method":42}"#, #"{"method":"a.B","more":"yes"}"#, ""] {
            #expect(throws: VarlinkProtocolError.self, "\(text)") { try VarlinkCall(message: Data(text.utf8)) }
        }
    }

    @Test func aParameterOfTheWrongTypeIsNamed() throws {
        func error(_ parameters: String, as type: (some Decodable).Type) -> VarlinkServiceError? {
            let call = try? VarlinkCall(message: Data(#"{"method":"io.losa.Manager.X","parameters":\#(parameters)}"#.utf8))
            do { _ = try call?.parameters(as: type); return nil } catch { return error }
        }
        #expect(error(#"{"id":"seven"}"#, as: JobIDParameters.self) == .invalidParameter(parameter: "id"))
        #expect(error(#"{"id":1.5}"#, as: JobIDParameters.self) == .invalidParameter(parameter: "id"))
        #expect(error(#"{"id":null}"#, as: JobIDParameters.self) == .invalidParameter(parameter: "id"))
        #expect(error(#"{"state":"sleeping"}"#, as: ListJobsParameters.self) == .invalidParameter(parameter: "state"))
        #expect(error(#"{"limit":true}"#, as: ListJobsParameters.self) == .invalidParameter(parameter: "limit"))
        #expect(error(#"[1]"#, as: ListJobsParameters.self) == .invalidParameter(parameter: "parameters"))
        #expect(error(#"{"path":"/m.gguf","sparsity":"half"}"#, as: SubmitParameters.self) == .invalidParameter(parameter: "sparsity"))
        #expect(error(#"{"id":3,"extra":1}"#, as: JobIDParameters.self) == nil, "unknown fields are ignored")
    }

    @Test func repliesAreWrittenAsVarlinkSpecifies() throws {
        #expect(String(decoding: try VarlinkReply.encode(JobIDParameters(id: 7)), as: UTF8.self) == #"{"parameters":{"id":7}}"#)
        #expect(String(decoding: try VarlinkReply.encode(JobIDParameters(id: 7), continues: true), as: UTF8.self)
                == #"{"continues":true,"parameters":{"id":7}}"#)
        #expect(String(decoding: try VarlinkReply.encode(NoParameters()), as: UTF8.self) == #"{"parameters":{}}"#)
        #expect(String(decoding: try VarlinkReply.encode(ManagerError.jobNotFound(id: 9).varlinkError), as: UTF8.self)
                == #"{"error":"io.losa.Manager.JobNotFound","parameters":{"id":9}}"#)
        #expect(String(decoding: try VarlinkReply.encode(VarlinkServiceError.expectedMore.varlinkError), as: UTF8.self)
                == #"{"error":"org.varlink.service.ExpectedMore","parameters":{}}"#)
        // Paths keep their slashes; optionals that are nil are left out.
        #expect(String(decoding: try VarlinkReply.encode(SubmitParameters(path: "/a/b.gguf")), as: UTF8.self)
                == #"{"parameters":{"path":"/a/b.gguf"}}"#)
    }

    @Test func repliesAreReadBackWithTheirErrors() throws {
        let reply = try VarlinkReply.decode(Data(#"{"parameters":{"id":7},"continues":true}"#.utf8), as: JobIDParameters.self)
        #expect(try reply.result.get() == JobIDParameters(id: 7) && reply.continues)
        let bare = try VarlinkReply.decode(Data(#"{}"#.utf8), as: NoParameters.self)
        #expect(try bare.result.get() == NoParameters() && !bare.continues)
        let failed = try VarlinkReply.decode(Data(#"{"error":"io.losa.Manager.InvalidState","parameters":{"state":"succeeded","reason":"done","id":1}}"#.utf8),
                                             as: JobReply.self)
        guard case .failure(let error) = failed.result else { Issue.record("an error reply decoded as success"); return }
        #expect(ManagerError(error) == .invalidState(id: 1, state: "succeeded", reason: "done"))
        #expect(throws: VarlinkProtocolError.self) { try VarlinkReply.decode(Data("nope".utf8), as: NoParameters.self) }
    }

    @Test func everyManagerErrorSurvivesTheWire() throws {
        let errors: [ManagerError] = [
            .jobNotFound(id: 12), .invalidState(id: nil, state: "paused", reason: "the queue is already paused"),
            .invalidState(id: 3, state: "succeeded", reason: "ended"), .permissionDenied(method: "io.losa.Manager.Submit", uid: 65534, group: "losad"),
            .permissionDenied(method: "io.losa.Manager.Cancel", uid: 1000, group: nil), .invalidModel(path: "/x", reason: "not GGUF"),
            .invalidConfiguration(file: "/etc/losad/losad.toml", reason: "jobs.sparsity = 2: must be below 1"),
            .internalError(message: "disk full"),
        ]
        for error in errors {
            let message = try VarlinkReply.encode(error.varlinkError)
            guard case .failure(let received) = try VarlinkReply.decode(message, as: NoParameters.self).result else {
                Issue.record("\(error) decoded as success"); continue
            }
            #expect(ManagerError(received) == error)
            #expect(VarlinkServiceError(received) == nil)
        }
        let standard: [VarlinkServiceError] = [.interfaceNotFound(interface: "a.b"), .methodNotFound(method: "a.b.C"),
                                                .methodNotImplemented(method: "a.b.D"), .invalidParameter(parameter: "id"),
                                                .permissionDenied, .expectedMore]
        for error in standard {
            guard case .failure(let received) = try VarlinkReply.decode(try VarlinkReply.encode(error.varlinkError), as: NoParameters.self).result
            else { Issue.record("\(error) decoded as success"); continue }
            #expect(VarlinkServiceError(received) == error)
            #expect(ManagerError(received) == nil)
        }
    }

    @Test func metricsAreWrittenInThePrometheusTextFormat() {
        let text = Metric.prometheusText([
            Metric(name: "losad_jobs", kind: .gauge, help: "Jobs by state.",
                   samples: [MetricSample(labels: ["state": "queued", "a": "x\"y\\z\nw"], value: 3),
                             MetricSample(labels: [:], value: 0.25)]),
            Metric(name: "losad_bytes_total", kind: .counter, help: "Bytes\nwritten.", samples: [MetricSample(value: 1.5e20)]),
        ])
        #expect(text == """
        # HELP losad_jobs Jobs by state.
        # TYPE losad_jobs gauge
        losad_jobs{a="x\\"y\\\\z\\nw",state="queued"} 3
        losad_jobs 0.25
        # HELP losad_bytes_total Bytes\\nwritten.
        # TYPE losad_bytes_total counter
        losad_bytes_total 1.5e+20

        """)
    }
}
