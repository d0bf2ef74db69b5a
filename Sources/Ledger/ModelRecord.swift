import Foundation
import GRDB

/// A model the daemon has seen, identified by the SHA-256 of its bytes (table `models`).
public struct ModelRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "models"

    public var id: Int64?
    /// Lowercase hex SHA-256 of the model's bytes (for a folder: of its files in name order).
    public var contentHash: String
    /// Where the model was first found.
    public var path: String
    /// "gguf" or "huggingface".
    public var format: String
    /// Bytes on disk of every file the model consists of.
    public var sizeBytes: Int64
    /// A short human name (the file or folder name without extension).
    public var name: String
    /// One line describing the architecture (layers, hidden size, parameters).
    public var configSummary: String
    public var firstSeen: Date

    public init(id: Int64? = nil, contentHash: String, path: String, format: String, sizeBytes: Int64,
                name: String, configSummary: String, firstSeen: Date = Date()) {
        self.id = id
        self.contentHash = contentHash
        self.path = path
        self.format = format
        self.sizeBytes = sizeBytes
        self.name = name
        self.configSummary = configSummary
        self.firstSeen = firstSeen
    }

    enum CodingKeys: String, CodingKey {
        case id
        case contentHash = "content_hash"
        case path, format
        case sizeBytes = "size_bytes"
        case name
        case configSummary = "config_summary"
        case firstSeen = "first_seen"
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let contentHash = Column(CodingKeys.contentHash)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
