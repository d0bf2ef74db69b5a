import Foundation

/// Writes and reads varlink replies (https://varlink.org/Method-Call):
/// `{"parameters": {…}, "continues": true}` or
/// `{"error": "interface.Name", "parameters": {…}}`. The NUL terminator is
/// added by the transport.
public enum VarlinkReply {
    private struct Envelope<P: Encodable>: Encodable {
        var parameters: P
        var continues: Bool?
    }

    /// The reply to a call: `parameters`, with `continues: true` when more replies follow.
    public static func encode<P: Encodable>(_ parameters: P, continues: Bool = false) throws -> Data {
        try VarlinkJSON.encoder.encode(Envelope(parameters: parameters, continues: continues ? true : nil))
    }

    /// An error reply.
    /// `error.parameters` is a JSON object that `VarlinkError` made, so it is
    /// spliced in as it is rather than parsed again.
    public static func encode(_ error: VarlinkError) throws -> Data {
        var message = Data(#"{"error":"#.utf8)
        message.append(try VarlinkJSON.encoder.encode(error.name))
        message.append(contentsOf: #","parameters":"#.utf8)
        message.append(error.parameters)
        message.append(UInt8(ascii: "}"))
        return message
    }

    private struct Head: Decodable {
        var error: String?
        var continues: Bool?
    }

    private struct ParametersField<P: Decodable>: Decodable {
        var parameters: P?
    }

    /// One reply as received: its parameters decoded as `P`, or the error it carries.
    public static func decode<P: Decodable>(_ message: Data, as type: P.Type) throws -> (result: Result<P, VarlinkError>, continues: Bool) {
        let head: Head
        do {
            head = try JSONDecoder().decode(Head.self, from: message)
        } catch {
            throw VarlinkProtocolError.malformedMessage(reason: "the reply is not a JSON object (\(message.count) bytes)")
        }
        let continues = head.continues ?? false
        if let name = head.error {
            let object = try? JSONSerialization.jsonObject(with: message) as? [String: Any]
            let parameters = (object?["parameters"] as? [String: Any]).flatMap {
                try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .withoutEscapingSlashes])
            } ?? Data("{}".utf8)
            return (.failure(VarlinkError(name: name, parameters: parameters)), continues)
        }
        do {
            let field = try JSONDecoder().decode(ParametersField<P>.self, from: message)
            if let parameters = field.parameters { return (.success(parameters), continues) }
            return (.success(try JSONDecoder().decode(P.self, from: Data("{}".utf8))), continues)
        } catch let error as DecodingError {
            throw VarlinkProtocolError.malformedMessage(
                reason: "the reply's parameters do not match \(P.self) at \"\(VarlinkCall.parameterName(error))\"")
        }
    }
}
