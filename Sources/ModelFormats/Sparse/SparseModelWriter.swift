import Kernels

/// Writes losad's sparse model file (docs/sparse-format.md, "The model file") from the checkpoint a
/// job started from and the job's merged weights: the roles chosen to be sparse in the compact
/// encoding, every other tensor as the source stored it (copied block for block) or, when the job
/// changed it, encoded as `denseType`.
///
/// Everything is checked before anything is written (roles and shapes against the source, values
/// against what the value kind and dense type store, metadata keys, the path); the file is written
/// under a temporary name, fsynced and renamed into place (`GGUFWriter` → `AtomicOutputFile`).
/// Sparse matrices are encoded one at a time as the file is written (`DeferredSparseMatrix`), and copied
/// tensors read from the source then, so the writer's memory is one matrix's encoding, not the model's.
public struct SparseModelWriter: Sendable {
    /// The checkpoint the weights were made from (a GGUF file or a Hugging Face folder).
    public let source: Checkpoint
    /// How sparse matrices store their values.
    public var valueKind: SparseValueKind
    /// How changed dense tensors are stored (`auto`: the source's float type, Q8_0 for a quantised source).
    public var denseType: ExportTensorType
    /// `losa.*` keys to add (sparsity, method, job); `losa.sparse.*` keys are the format's own.
    public var metadata: GGUFMetadata
    /// Per sparse role, the importance of each input column (its second moment over calibration tokens, `cols`
    /// values ≥ 0): s4 scales are then chosen for the importance-weighted error (`SparseMatrix.encode`). Roles
    /// absent, and the other value kinds, are encoded unweighted. A fused tensor uses its first role's.
    public var importances: [TensorRole: [Float]]
    /// Per sparse role, s4 scales chosen elsewhere ([rows · groups] f16 bits, `SparseMatrix.encodeS4`), for weights
    /// already rounded to them; they take precedence over `importances`. A fused tensor joins its roles' in order.
    public var s4Scales: [TensorRole: [UInt16]]

    public init(source: Checkpoint, valueKind: SparseValueKind = .s8, denseType: ExportTensorType = .auto,
                metadata: GGUFMetadata = GGUFMetadata(), importances: [TensorRole: [Float]] = [:],
                s4Scales: [TensorRole: [UInt16]] = [:]) {
        self.source = source
        self.valueKind = valueKind
        self.denseType = denseType
        self.metadata = metadata
        self.importances = importances
        self.s4Scales = s4Scales
    }

    /// Writes the file at `path` (a new `.gguf` name unless `replacingExisting`).
    ///
    /// - Parameters:
    ///   - weights: Float32 tensors by role, each shaped as the source's entry (the merged model);
    ///     roles absent here are copied from the source unchanged.
    ///   - sparseRoles: the roles stored in the sparse encoding (2-D, all in `weights`; at least one).
    @discardableResult
    public func write(weights: [TensorRole: any ReplacementValues], sparse sparseRoles: Set<TensorRole>, to path: String,
                      replacingExisting: Bool = false) throws -> SparseModelWriteResult {
        let output = AtomicOutputFolder.trimmingTrailingSlashes(path)
        guard let sourceFormat = SparseModelFormat.sourceFormatName(source.format) else {
            throw ModelFormatError.unsupported(file: output, field: "source \(source.path)",
                                               reason: "a sparse model file is written from a GGUF file or a Hugging Face folder, not from another sparse file")
        }
        guard output.hasSuffix(".gguf") else {
            throw ModelFormatError.io(file: output, operation: "write the sparse model file",
                                      reason: "a sparse model file is a GGUF container; the path must end in .gguf")
        }
        try CheckpointExporter.checkOutputPath(output, source: source, replacingExisting: replacingExisting)
        try CheckpointExporter.checkMetadata(metadata, file: output)
        for key in metadata.keys where key.hasPrefix(SparseModelFormat.Key.prefix) {
            throw ModelFormatError.invalid(file: output, field: "metadata key '\(key)'",
                                           reason: "\(SparseModelFormat.Key.prefix)* keys are the format's own; the writer sets them")
        }
        try CheckpointExporter.checkReplacements(weights, source: source, file: output)
        guard !sparseRoles.isEmpty else {
            throw ModelFormatError.invalid(file: output, field: "sparse roles", reason: "none given; a sparse model file holds at least one sparse matrix")
        }
        for role in sparseRoles {
            let name = source.tensorName(of: role)
            guard let tensor = weights[role] else {
                throw ModelFormatError.invalid(file: output, field: "sparse tensor '\(name)'", reason: "no weights were given for it")
            }
            guard tensor.shape.count == 2 else {
                throw ModelFormatError.invalid(file: output, field: "sparse tensor '\(name)'",
                                               reason: "shape \(tensor.shape); only matrices are stored sparse")
            }
        }

        let plan = try planTensors(weights: weights, sparseRoles: sparseRoles, file: output)
        var writer = GGUFWriter(metadata: try fileMetadata(sourceFormat: sourceFormat, plan: plan, file: output))
        for tensor in plan { tensor.add(to: &writer) }
        try writer.write(to: output, replacingExisting: replacingExisting)
        return SparseModelWriteResult(path: output, bytesWritten: CheckpointExporter.fileSize(output), tensors: plan.map(\.written))
    }

    // MARK: - Planning

    /// One source tensor and how it is written.
    private struct PlannedTensor {
        enum Data {
            case sparse(DeferredSparseMatrix)
            case encode(Tensor, GGMLType)
            case copyGGUF(GGUFTensorInfo, GGUFFile)
            /// A tensor of a safetensors shard: its bytes copied (F32, F16, BF16) or converted to F32 when written.
            case copySafetensors(SafetensorsFile, GGMLType, converted: Bool)
        }

        var name: String
        var shape: [Int]
        var data: Data
        var written: SparseWrittenTensor

        func add(to writer: inout GGUFWriter) {
            switch data {
            case .sparse(let matrix):
                SparseModelWriter.addParts(of: matrix, named: name, to: &writer)
            case .encode(let values, let type):
                writer.addTensor(named: name, values, as: type)
            case .copyGGUF(let info, let file):
                writer.addTensor(copying: info, from: file)
            case .copySafetensors(let shard, let type, let converted):
                let name = name
                writer.addTensor(named: name, shape: shape, type: type, byteCount: type.byteCount(elements: shape.reduce(1, *)) ?? 0) { write in
                    if converted {
                        let values = try shard.tensor(named: name)
                        try write(UnsafeRawBufferPointer(start: values.pointer, count: values.count * 4))
                    } else {
                        try shard.withRawBytes(of: name) { try write($0) }
                    }
                }
            }
        }
    }

    /// The source's tensors in its order, each sparse, re-encoded or copied. A sparse one is checked and sized now
    /// (so that a value the kind cannot store fails before the file exists) but encoded only when written.
    private func planTensors(weights: [TensorRole: any ReplacementValues], sparseRoles: Set<TensorRole>, file: String) throws -> [PlannedTensor] {
        // (name, placement, shape, source type as ggml names it, how to copy it unchanged)
        var sourceTensors: [(name: String, placement: TensorPlacement, shape: [Int], type: GGMLType, copy: PlannedTensor.Data)] = []
        let architecture = source.config.architecture
        switch source.storage {
        case .gguf(let gguf):
            for info in gguf.tensors {
                guard let placement = TensorPlacement(ggufName: info.name, architecture: architecture) else { continue }
                sourceTensors.append((info.name, placement, info.shape, info.type, .copyGGUF(info, gguf)))
            }
        case .huggingFace(let checkpoint):
            for shard in checkpoint.files {
                for info in shard.tensors {
                    // Tensors without a role (rotary caches) hold nothing losad reads; they are left out.
                    guard let placement = TensorPlacement(huggingFaceName: info.name, architecture: architecture) else { continue }
                    let type: GGMLType, converted: Bool
                    switch info.dtype {
                    case .f32: (type, converted) = (.f32, false)
                    case .f16: (type, converted) = (.f16, false)
                    case .bf16: (type, converted) = (.bf16, false)
                    default:
                        // Converted to F32 when written; a dtype without a conversion is refused now, with the
                        // reader's sentence naming the tensor (`tensor(named:)` throws it without reading anything).
                        if !info.dtype.convertsToFloat32 { _ = try shard.tensor(named: info.name) }
                        (type, converted) = (.f32, true)
                    }
                    sourceTensors.append((info.name, placement, info.shape, type, .copySafetensors(shard, type, converted: converted)))
                }
            }
        case .sparse:
            preconditionFailure("refused by write(weights:sparse:to:)")
        }

        var plan: [PlannedTensor] = []
        for tensor in sourceTensors {
            let sourceType = tensor.type.description
            let role = tensor.placement.role
            // A fused tensor (phi3) is one matrix of the file: sparse when its roles are, its rows stacked.
            let roles = source.tensors.first { $0.name == tensor.name }.map { $0.parts.map(\.role) } ?? []
            let isSparse = role.map { sparseRoles.contains($0) } ?? (!roles.isEmpty && roles.allSatisfy { sparseRoles.contains($0) })
            if case .fused(_, let fused) = tensor.placement, !isSparse, roles.contains(where: { sparseRoles.contains($0) }) {
                throw ModelFormatError.invalid(file: file, field: "sparse tensor '\(tensor.name)'",
                                               reason: "it holds \(fused.members.map(\.rawValue).joined(separator: ", ")) fused: all of them are stored sparse or none")
            }
            let replaced = try source.replacedValues(of: tensor.name, placement: tensor.placement, replacements: weights)
            if isSparse, let values = replaced {
                let counts = try Self.checkEncodable(values, kind: valueKind, name: tensor.name, file: file)
                let importance = (role ?? roles.first).flatMap { importances[$0] }
                if let importance {
                    guard importance.count == values.shape[1], importance.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                        throw ModelFormatError.invalid(file: file, field: "importances of sparse tensor '\(tensor.name)'",
                                                       reason: "\(importance.count) values for \(values.shape[1]) columns; each must be finite and ≥ 0")
                    }
                }
                let parts = role.map { [$0] } ?? roles
                let givenScales = parts.allSatisfy { s4Scales[$0] != nil } ? parts.flatMap { s4Scales[$0]! } : nil
                let rows = values.shape[0], cols = values.shape[1]
                if valueKind == .s4, let givenScales {
                    let groups = SparseModelFormat.groups(columns: cols)
                    guard givenScales.count == rows * groups else {
                        throw ModelFormatError.invalid(file: file, field: "s4 scales of sparse tensor '\(tensor.name)'",
                                                       reason: "\(givenScales.count) scales for \(rows) rows of \(groups) groups")
                    }
                }
                // A fused tensor's values are a stacked copy: made again when written rather than kept until then.
                // So are produced values (a job's compactly kept model): made again for the write.
                let kept: Tensor? = role == nil || source.producesValues(of: tensor.name, placement: tensor.placement, replacements: weights)
                    ? nil : values
                let kind = valueKind, name = tensor.name, placement = tensor.placement, source = source
                let matrix = DeferredSparseMatrix(name: name, file: file, kind: kind, rows: rows, cols: cols,
                                                  valueBytes: counts.valueBytes, storedCount: counts.stored) {
                    let values = try kept ?? source.replacedValues(of: name, placement: placement, replacements: weights)!
                    if kind == .s4, let givenScales { return SparseMatrix.encodeS4(values, scales: givenScales) }
                    return SparseMatrix.encode(values, kind: kind, importances: kind == .s4 ? importance : nil)
                }
                plan.append(PlannedTensor(name: tensor.name, shape: tensor.shape, data: .sparse(matrix),
                                          written: SparseWrittenTensor(name: tensor.name, role: role, shape: tensor.shape, sourceType: sourceType,
                                                                       type: SparseModelFormat.entryType(valueKind), replaced: true,
                                                                       byteCount: matrix.storedByteCount, density: matrix.density, fallback: nil)))
            } else if let values = replaced {
                let (type, fallback) = denseType.ggufType(source: tensor.type, rowLength: tensor.shape.last ?? 1)
                try CheckpointExporter.checkValues(values, name: tensor.name, storedAs: type, file: file)
                plan.append(PlannedTensor(name: tensor.name, shape: tensor.shape, data: .encode(values, type),
                                          written: SparseWrittenTensor(name: tensor.name, role: role, shape: tensor.shape, sourceType: sourceType,
                                                                       type: type.description, replaced: true,
                                                                       byteCount: type.byteCount(elements: values.count) ?? 0, density: nil, fallback: fallback)))
            } else {
                let count = tensor.shape.reduce(1, *)
                plan.append(PlannedTensor(name: tensor.name, shape: tensor.shape, data: tensor.copy,
                                          written: SparseWrittenTensor(name: tensor.name, role: role, shape: tensor.shape, sourceType: sourceType,
                                                                       type: tensor.type.description, replaced: false,
                                                                       byteCount: tensor.type.byteCount(elements: count) ?? 0, density: nil, fallback: nil)))
            }
        }
        return plan
    }

    // MARK: - Sparse matrices

    /// The largest magnitude `kind` stores: its binary16 scale (or value) must stay finite.
    static func largestMagnitude(_ kind: SparseValueKind) -> Float {
        let half = Float(Float16.greatestFiniteMagnitude)
        switch kind {
        case .s8: return half * 127
        case .s4: return half * 64
        case .f16: return half
        }
    }

    /// Refuses, naming the weight, what `SparseMatrix.encode` would store other than as given: it
    /// saturates ±∞ and weights past `largestMagnitude`, turns NaN into 0, and traps on a value
    /// stream past the format's 32-bit offsets; the file must hold the job's weights or not exist. Returns what
    /// the encoding will store: its value bytes (padding excluded) and the number of stored weights.
    @discardableResult
    static func checkEncodable(_ w: Tensor, kind: SparseValueKind, name: String, file: String) throws -> (valueBytes: Int, stored: Int) {
        guard w.rank == 2, w.shape[0] > 0, w.shape[1] > 0 else {
            throw ModelFormatError.invalid(file: file, field: "sparse tensor '\(name)'",
                                           reason: "shape \(w.shape); a sparse matrix has rows and columns")
        }
        let cols = w.shape[1], limit = largestMagnitude(kind)
        let weights = UnsafeBufferPointer(start: w.pointer, count: w.count)
        var valueBytes = 0, storedTotal = 0
        // Row by row, group by group: groups never straddle rows (the last one of a row stops at its end).
        for rowStart in stride(from: 0, to: weights.count, by: cols) {
            for groupStart in stride(from: rowStart, to: rowStart + cols, by: SparseModelFormat.groupSize) {
                var stored = 0
                for index in groupStart..<min(groupStart + SparseModelFormat.groupSize, rowStart + cols) where weights[index] != 0 {
                    let value = weights[index]
                    guard abs(value) <= limit else {
                        let why = value.isFinite ? "\(value) is beyond what \(kind) stores (magnitudes up to \(limit))" : "\(value) is not finite"
                        throw ModelFormatError.invalid(file: file, field: "sparse tensor '\(name)' element \(index)", reason: why)
                    }
                    stored += 1
                }
                valueBytes += kind.valueBytes(count: stored)
                storedTotal += stored
            }
        }
        guard valueBytes <= Int(UInt32.max) else {
            throw ModelFormatError.invalid(file: file, field: "sparse tensor '\(name)'",
                                           reason: "its \(valueBytes) value bytes do not fit the format's uint32 row offsets")
        }
        return (valueBytes, storedTotal)
    }

    /// Adds the GGUF tensors of `matrix` (`NAME.mask`, `.offsets`, `.values` with its padding, `.scales`
    /// for s8/s4), in that order, little-endian as docs/sparse-format.md stores them.
    static func addParts(of matrix: SparseMatrix, named name: String, to writer: inout GGUFWriter) {
        addParts(of: DeferredSparseMatrix(encoded: matrix, name: name), named: name, to: &writer)
    }

    /// The same for a matrix encoded when the writer reaches its first part.
    fileprivate static func addParts(of matrix: DeferredSparseMatrix, named name: String, to writer: inout GGUFWriter) {
        for part in SparseModelFormat.Part.allCases where part.isPresent(for: matrix.kind) {
            let dimensions = part.dimensions(rows: matrix.rows, groups: matrix.groups, valueBytes: matrix.valueBytes)
            let byteCount = dimensions.reduce(part.elementBytes, *)
            writer.addTensor(named: SparseModelFormat.tensorName(name, part), shape: dimensions.reversed(), type: part.type,
                             byteCount: byteCount) { write in try matrix.write(part, to: write) }
        }
    }

    static func littleEndian<T: FixedWidthInteger>(_ elements: UnsafePointer<T>, count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count * MemoryLayout<T>.size) { raw, initialized in
            for index in 0..<count {
                UnsafeMutableRawPointer(raw.baseAddress!).storeBytes(of: elements[index].littleEndian,
                                                                     toByteOffset: index * MemoryLayout<T>.size, as: T.self)
            }
            initialized = count * MemoryLayout<T>.size
        }
    }

    // MARK: - Metadata

    /// The format's keys first (so a reader meets the architecture and version at once), then the
    /// source's keys in its order (GGUF source: all but `general.architecture`, `general.alignment`
    /// and `general.file_type`, which described the dense file), the caller's `losa.*` keys, and the
    /// table of sparse matrices.
    private func fileMetadata(sourceFormat: String, plan: [PlannedTensor], file: String) throws -> GGUFMetadata {
        var combined = GGUFMetadata()
        combined["general.architecture"] = .string(SparseModelFormat.architecture)
        combined[SparseModelFormat.Key.version] = .uint32(SparseModelFormat.version)
        combined[SparseModelFormat.Key.architecture] = .string(source.config.architecture.rawValue)
        combined[SparseModelFormat.Key.sourceFormat] = .string(sourceFormat)
        combined[SparseModelFormat.Key.groupSize] = .uint32(UInt32(SparseModelFormat.groupSize))
        combined[GGUFFormat.alignmentKey] = .uint32(SparseModelFormat.alignment)
        switch source.storage {
        case .gguf(let gguf):
            // The family whose `<family>.*` keys the source has: its general.architecture (mistral GGUFs say "llama").
            if let family = gguf.metadata["general.architecture"] { combined[SparseModelFormat.Key.architecture] = family }
            let replaced: Set<String> = ["general.architecture", GGUFFormat.alignmentKey, CheckpointExporter.fileTypeKey]
            for (key, value) in gguf.metadata.entries where !replaced.contains(key) && !key.hasPrefix(SparseModelFormat.Key.prefix) {
                combined[key] = value
            }
        case .huggingFace:
            combined[SparseModelFormat.Key.huggingFaceConfig] = .string(try documentText(named: "config.json", file: file))
            combined[SparseModelFormat.Key.huggingFaceTokenizer] = .string(try documentText(named: "tokenizer.json", file: file))
        case .sparse:
            preconditionFailure("refused by write(weights:sparse:to:)")
        }
        for (key, value) in metadata.entries { combined[key] = value }
        var names: [GGUFValue] = [], kinds: [GGUFValue] = [], columns: [GGUFValue] = []
        for tensor in plan {
            guard case .sparse(let matrix) = tensor.data else { continue }
            names.append(.string(tensor.name))
            kinds.append(.string(matrix.kind.rawValue))
            columns.append(.uint32(UInt32(matrix.cols)))
        }
        combined[SparseModelFormat.Key.tensors] = .array(elementType: .string, names)
        combined[SparseModelFormat.Key.kinds] = .array(elementType: .string, kinds)
        combined[SparseModelFormat.Key.columns] = .array(elementType: .uint32, columns)
        return combined
    }

    /// A file of the Hugging Face source folder as text, verbatim.
    private func documentText(named name: String, file: String) throws -> String {
        let path = source.path + "/" + name
        let bytes = try MappedFile(path: path)
        guard let text = String(validating: bytes.bytes, as: UTF8.self) else {
            throw ModelFormatError.invalid(file: path, field: "contents", reason: "not valid UTF-8, so it cannot be embedded as a GGUF string")
        }
        return text
    }
}

/// What `SparseModelWriter.write` wrote.
public struct SparseModelWriteResult: Sendable, Equatable {
    /// The file, in place.
    public let path: String
    /// The file's size in bytes.
    public let bytesWritten: Int
    /// Every tensor in the source's order; a sparse matrix once (its four parts together).
    public let tensors: [SparseWrittenTensor]

    /// Bytes of the sparse matrices' parts.
    public var sparseBytes: Int { tensors.filter { $0.density != nil }.reduce(0) { $0 + $1.byteCount } }
    /// Bytes of the dense tensors.
    public var denseBytes: Int { tensors.filter { $0.density == nil }.reduce(0) { $0 + $1.byteCount } }
}

/// One tensor of a sparse model file as written.
public struct SparseWrittenTensor: Sendable, Equatable {
    /// The source's name for it.
    public let name: String
    /// Its role; nil for a fused tensor (phi3's q/k/v, gate/up), one matrix holding several roles' rows.
    public let role: TensorRole?
    /// Row-major logical shape.
    public let shape: [Int]
    /// The source's storage type ("Q4_1", "F32", "BF16").
    public let sourceType: String
    /// What was written: "sparse-s8" … or a ggml type ("Q8_0").
    public let type: String
    /// Written from the caller's weights rather than copied.
    public let replaced: Bool
    /// Bytes stored (a sparse matrix: its four parts; padding between tensors excluded).
    public let byteCount: Int
    /// The fraction of weights stored, for a sparse matrix; nil for a dense tensor.
    public let density: Double?
    /// Why a changed dense tensor is not in the requested type (its rows are not whole blocks).
    public let fallback: String?
}
