import Foundation

/// One varlink method call as it arrives (https://varlink.org/Method-Call):
/// `{"method": "interface.Member", "parameters": {…}, "oneway": …, "more": …}`.
/// The parameters stay undecoded until the handler knows the method's type.
public struct VarlinkCall: Sendable {
    /// The qualified method name, like `io.losa.Manager.Status`.
    public let method: String
    /// The caller wants no reply.
    public let oneway: Bool
    /// The caller accepts several replies (`continues`).
    public let more: Bool
    /// The caller asks to leave varlink after the reply (not supported by losad).
    public let upgrade: Bool
    /// The whole message, from which `parameters` is decoded on demand.
    let message: Data

    private struct Head: Decodable {
        var method: String
        var oneway: Bool?
        var more: Bool?
        var upgrade: Bool?
    }

    private struct ParametersField<P: Decodable>: Decodable {
        var parameters: P?
    }

    /// Parses the fields of the call; a message that is not such a JSON object
    /// is a protocol error (the connection cannot be trusted to go on).
    public init(message: Data) throws(VarlinkProtocolError) {
        let head: Head
        do {
            head = try JSONDecoder().decode(Head.self, from: message)
        } catch let DecodingError.keyNotFound(key, _) {
            throw .malformedMessage(reason: "the call has no \"\(key.stringValue)\" field")
        } catch let DecodingError.typeMismatch(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw .malformedMessage(reason: field.isEmpty ? "the call is not a JSON object" : "the call's \"\(field)\" field has the wrong type")
        } catch {
            throw .malformedMessage(reason: "not JSON (\(message.count) bytes)")
        }
        self.method = head.method
        self.oneway = head.oneway ?? false
        self.more = head.more ?? false
        self.upgrade = head.upgrade ?? false
        self.message = message
    }

    /// Makes a call to send (the client side).
    public init<P: Encodable>(method: String, parameters: P, oneway: Bool = false, more: Bool = false) throws {
        self.method = method
        self.oneway = oneway
        self.more = more
        self.upgrade = false
        self.message = try VarlinkJSON.encoder.encode(
            CallEnvelope(method: method, parameters: parameters, oneway: oneway ? true : nil, more: more ? true : nil))
    }

    /// The interface part of `method` (everything before the last dot), or nil
    /// when the name has no dot.
    public var interface: String? {
        guard let dot = method.lastIndex(of: ".") else { return nil }
        return String(method[..<dot])
    }

    /// The member part of `method` (after the last dot).
    public var member: String {
        guard let dot = method.lastIndex(of: ".") else { return method }
        return String(method[method.index(after: dot)...])
    }

    /// The call's parameters as `P`; absent or null parameters decode as `{}`.
    /// A missing field or a value of the wrong type is `InvalidParameter`
    /// naming the field.
    public func parameters<P: Decodable>(as type: P.Type) throws(VarlinkServiceError) -> P {
        do {
            if let parameters = try JSONDecoder().decode(ParametersField<P>.self, from: message).parameters {
                return parameters
            }
            return try JSONDecoder().decode(P.self, from: Data("{}".utf8))
        } catch let error as DecodingError {
            let name = Self.parameterName(error)
            throw .invalidParameter(parameter: name == "parameters" ? culprit(as: P.self) ?? name : name)
        } catch {
            throw .invalidParameter(parameter: "parameters")
        }
    }

    /// The field whose removal lets the parameters decode, or be refused for
    /// that field's absence: Foundation reports some bad values (a fraction
    /// where an integer is declared) without their path. Tries the first 32
    /// fields only, so a message cannot make this costly.
    private func culprit<P: Decodable>(as type: P.Type) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: message) as? [String: Any],
              let parameters = object["parameters"] as? [String: Any] else { return nil }
        for key in parameters.keys.sorted().prefix(32) {
            var reduced = parameters
            reduced.removeValue(forKey: key)
            guard let data = try? JSONSerialization.data(withJSONObject: reduced) else { continue }
            do {
                _ = try JSONDecoder().decode(P.self, from: data)
                return key
            } catch DecodingError.keyNotFound(let missing, let context) where context.codingPath.isEmpty && missing.stringValue == key {
                return key
            } catch {
                continue
            }
        }
        return nil
    }

    /// The dotted path of the field a decoding error is about, without the
    /// leading `parameters`.
    static func parameterName(_ error: DecodingError) -> String {
        var path: [CodingKey]
        switch error {
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        @unknown default: path = []
        }
        if path.first?.stringValue == "parameters" { path.removeFirst() }
        let name = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return name.isEmpty ? "parameters" : name
    }
}

/// A call as it is written.
private struct CallEnvelope<P: Encodable>: Encodable {
    var method: String
    var parameters: P
    var oneway: Bool?
    var more: Bool?
}

/// The JSON settings every varlink message of losad is written with.
enum VarlinkJSON {
    /// Sorted keys make replies byte-for-byte reproducible; paths keep their slashes.
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
