import Foundation
import Kernels
import ModelFormats
import Transformer

/// What a LoSA job saves after each finished iteration, to resume after a crash, a kill or a stop with the
/// same result as an uninterrupted run (every random draw derives from the seed and the iteration/step, so
/// no generator state needs saving):
///
///     DIR/state.json        iteration, ranks, the report so far, identity of model and settings
///     DIR/projections.bin   the seven projections of every layer (the pruned base weights), each a 64-bit kind
///                           then, kind 1: its nonzero positions (one bit per weight, little-endian 64-bit words,
///                           row-major) followed by the nonzero values in that order (Float32): exact, and at
///                           sparsity s about (1 − s) + 1/32 of the Float32 size (53% at 50%, 33% at 70%); kind 0,
///                           a compactly kept projection whose values are the input's: only its pruned positions
///                           (1/32 of the Float32 size; a 7B model's 0.8 GB instead of 13 GB at 50%)
///     DIR/adapters.f32      the adapter arena (A and B of every projection)
///     DIR/optimizer.bin     AdamW's step count and moments
///
/// A new checkpoint is written through `AtomicOutputFolder` (every file fsynced, the folder swapped in
/// atomically, the parent fsynced), so a crash while writing leaves the previous one intact.
struct JobCheckpoint {
    static let formatVersion = 3

    struct State: Codable {
        var formatVersion: Int
        /// Input path, size and modification time, and the settings: a checkpoint resumes only the same job.
        var identity: String
        var iteration: Int
        var ranks: [Int]
        var report: CompressionReport
    }

    let directory: String

    /// Identity of a job: the input file(s) as found on disk and every setting.
    static func identity(input: String, settings: CompressionSettings) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: input)
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let settingsText = (try? encoder.encode(settings)).flatMap { String(data: $0, encoding: .utf8) } ?? ""
        return "\(input)|\(size)|\(modified)|\(settingsText)"
    }

    var exists: Bool { FileManager.default.fileExists(atPath: directory + "/state.json") }

    /// Saves the state of a finished iteration, replacing the previous checkpoint atomically.
    func save(state: State, weights: DecoderWeights, adapters: SparseLoRA, optimizer: AdamW) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let stateJSON = [UInt8](try encoder.encode(state))
        try AtomicOutputFolder.write(to: directory, replacingExisting: true) { folder in
            try AtomicOutputFile.write(stateJSON, to: folder + "/state.json", replacingExisting: false)
            try writeCompact(projections(of: weights), to: folder + "/projections.bin")
            try write(floats: [UnsafeMutableBufferPointer(start: adapters.parameters.base, count: adapters.parameters.count)],
                      to: folder + "/adapters.f32")
            try AtomicOutputFile.write(to: folder + "/optimizer.bin", replacingExisting: false) { file in
                try optimizer.writeState { try file.write($0) }
            }
        }
    }

    /// The saved state, after checking it belongs to this job; nil when there is none, or when an older losad wrote
    /// it in another format (the job then starts over and its next checkpoint replaces that one: nothing of the
    /// user's is lost, and a job interrupted by an upgrade does not fail on every retry).
    func loadState(identity: String) throws(CompressionError) -> State? {
        guard exists else { return nil }
        let state: State
        do {
            state = try JSONDecoder().decode(State.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/state.json")))
        } catch {
            throw .checkpointMismatch(path: directory, reason: "state.json is unreadable (\(error))")
        }
        guard state.formatVersion == Self.formatVersion else { return nil }
        guard state.identity == identity else {
            throw .checkpointMismatch(path: directory, reason: "it was made for another input file or other settings")
        }
        return state
    }

    /// Restores projections, adapters and optimizer from the saved files.
    func restore(weights: DecoderWeights, adapters: SparseLoRA, optimizer: AdamW) throws(CompressionError) {
        do {
            try readCompact(projections(of: weights), from: directory + "/projections.bin")
            try read(floats: [UnsafeMutableBufferPointer(start: adapters.parameters.base, count: adapters.parameters.count)],
                     from: directory + "/adapters.f32")
            try optimizer.restore(from: [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/optimizer.bin"))))
        } catch let error as CompressionError {
            throw error
        } catch {
            throw .checkpointMismatch(path: directory, reason: "\(error)")
        }
    }

    func remove() {
        AtomicOutputFolder.removeTree(directory)
    }

    // MARK: - Files

    /// Every projection of every layer, layer-major, as the checkpoint stores it.
    private func projections(of weights: DecoderWeights) -> [LinearWeight] {
        weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { layer.projection($0) } }
    }

    /// A scratch for the largest compactly kept projection among `weights` (empty when all are Float32).
    private func scratch(for weights: [LinearWeight]) -> UnsafeMutableBufferPointer<Float> {
        let count = weights.map { if case .compressed(let m) = $0 { m.rows * m.cols } else { 0 } }.max() ?? 0
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        buffer.initialize(repeating: 0)
        return buffer
    }

    private func write(floats buffers: [UnsafeMutableBufferPointer<Float>], to path: String) throws {
        try AtomicOutputFile.write(to: path, replacingExisting: false) { file in
            for buffer in buffers { try file.write(UnsafeRawBufferPointer(buffer)) }
        }
    }

    private func read(floats buffers: [UnsafeMutableBufferPointer<Float>], from path: String) throws {
        let expected = buffers.reduce(0) { $0 + $1.count * 4 }
        let (fd, size) = try Self.open(path)
        defer { close(fd) }
        guard size == expected else {
            throw CompressionError.checkpointMismatch(path: path, reason: "size \(size), expected \(expected) bytes")
        }
        for buffer in buffers { try Self.readFully(fd, into: UnsafeMutableRawBufferPointer(buffer), path: path) }
    }

    /// The kinds of a projection's record in projections.bin.
    private enum RecordKind: UInt64 {
        /// The pruned positions only: the values are the input's.
        case prunedPositions = 0
        /// The nonzero positions and the nonzero values.
        case nonzeroValues = 1
    }

    /// Each projection as its record (see the type's comment): a compactly kept one whose values are the input's
    /// as its pruned positions alone, any other as its nonzero positions and values (a compact one expanded first).
    private func writeCompact(_ weights: [LinearWeight], to path: String) throws {
        let scratch = scratch(for: weights)
        defer { scratch.deallocate() }
        try AtomicOutputFile.write(to: path, replacingExisting: false) { file in
            for weight in weights {
                let buffer: UnsafeBufferPointer<Float>
                switch weight {
                case .dense(let w): buffer = UnsafeBufferPointer(start: w.pointer, count: w.count)
                case .compressed(let matrix):
                    guard let compact = matrix as? PrunedProjection, !compact.isMerged else {
                        preconditionFailure("job checkpoint: a projection is neither Float32 nor an unmerged pruned projection")
                    }
                    if compact.keptValues == nil {
                        let bits = compact.prunedBits ?? [UInt64](repeating: 0, count: (compact.rows * compact.cols + 63) / 64)
                        try withUnsafeBytes(of: RecordKind.prunedPositions.rawValue.littleEndian) { try file.write($0) }
                        try bits.withUnsafeBytes { try file.write($0) }
                        continue
                    }
                    compact.decodeAll(into: scratch.baseAddress!)
                    buffer = UnsafeBufferPointer(rebasing: scratch[0..<(matrix.rows * matrix.cols)])
                }
                var bits = [UInt64](repeating: 0, count: (buffer.count + 63) / 64)
                var values: [Float] = []
                values.reserveCapacity(buffer.count)
                for (i, v) in buffer.enumerated() where v != 0 {
                    bits[i >> 6] |= 1 << UInt64(i & 63)
                    values.append(v)
                }
                try withUnsafeBytes(of: RecordKind.nonzeroValues.rawValue.littleEndian) { try file.write($0) }
                try bits.withUnsafeBytes { try file.write($0) }
                try values.withUnsafeBytes { try file.write($0) }
            }
        }
    }

    /// The inverse of `writeCompact` into weights as the job loaded them (Float32 copies of the input, or compactly
    /// kept ones without a mask): the file must end exactly after the last record.
    private func readCompact(_ weights: [LinearWeight], from path: String) throws {
        let (fd, size) = try Self.open(path)
        defer { close(fd) }
        let scratch = scratch(for: weights)
        defer { scratch.deallocate() }
        var consumed = 0
        for weight in weights {
            let buffer: UnsafeMutableBufferPointer<Float>
            switch weight {
            case .dense(let w): buffer = UnsafeMutableBufferPointer(start: w.pointer, count: w.count)
            case .compressed(let matrix): buffer = UnsafeMutableBufferPointer(rebasing: scratch[0..<(matrix.rows * matrix.cols)])
            }
            var rawKind: UInt64 = 0
            try withUnsafeMutableBytes(of: &rawKind) { try Self.readFully(fd, into: $0, path: path) }
            guard let kind = RecordKind(rawValue: UInt64(littleEndian: rawKind)) else {
                throw CompressionError.checkpointMismatch(path: path, reason: "a projection's record has the unknown kind \(rawKind)")
            }
            var bits = [UInt64](repeating: 0, count: (buffer.count + 63) / 64)
            try bits.withUnsafeMutableBytes { try Self.readFully(fd, into: $0, path: path) }
            if buffer.count % 64 != 0, bits[bits.count - 1] >> UInt64(buffer.count % 64) != 0 {
                throw CompressionError.checkpointMismatch(path: path, reason: "a mask marks positions past its tensor")
            }
            consumed += 8 + bits.count * 8
            if kind == .prunedPositions {
                // The values are the input's, which the weights hold as loaded: only the zeros are put in.
                switch weight {
                case .dense:
                    for i in 0..<buffer.count where bits[i >> 6] >> UInt64(i & 63) & 1 == 1 { buffer[i] = 0 }
                case .compressed(let matrix):
                    guard let compact = matrix as? PrunedProjection else {
                        throw CompressionError.checkpointMismatch(path: path, reason: "pruned positions for a matrix that cannot take them")
                    }
                    compact.restore(prunedBits: bits)
                }
                continue
            }
            var values = [Float](repeating: 0, count: bits.reduce(0) { $0 + $1.nonzeroBitCount })
            try values.withUnsafeMutableBytes { try Self.readFully(fd, into: $0, path: path) }
            var next = 0
            for i in 0..<buffer.count {
                if bits[i >> 6] >> UInt64(i & 63) & 1 == 1 {
                    buffer[i] = values[next]
                    next += 1
                } else {
                    buffer[i] = 0
                }
            }
            if case .compressed(let compact as PrunedProjection) = weight { compact.restore(buffer.baseAddress!) }
            consumed += values.count * 4
        }
        guard size == consumed else {
            throw CompressionError.checkpointMismatch(path: path, reason: "size \(size), expected \(consumed) bytes")
        }
    }

    /// The file opened for reading, and its size.
    private static func open(_ path: String) throws -> (fd: Int32, size: Int) {
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CompressionError.checkpointMismatch(path: path, reason: "missing") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw CompressionError.checkpointMismatch(path: path, reason: "cannot be examined")
        }
        return (fd, Int(info.st_size))
    }

    private static func readFully(_ fd: Int32, into raw: UnsafeMutableRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < raw.count {
            let n = Foundation.read(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CompressionError.checkpointMismatch(path: path, reason: "truncated") }
            offset += n
        }
    }
}
