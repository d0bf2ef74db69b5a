/// Checking a borrowed view (a memory-mapped file) against docs/sparse-format.md before the kernels
/// trust it: every read of `validate` stays inside the buffers, and a view that passes cannot make a
/// kernel read past its value buffer (the kernels walk the values by the masks from each row's offset,
/// and over-read at most the padding).
extension SparseMatrix {
    /// Wraps the four sections of one encoded matrix, given as byte buffers that `owner` keeps valid,
    /// after checking their sizes and alignment and then the encoding itself (`validate`).
    ///
    /// Sizes: masks rows·groups·8 bytes, rowOffsets (rows + 1)·4, scales rows·groups·2 (nil for
    /// `.f16`), values at least rowOffsets[rows] + 64 (the padding).
    public convenience init(rows: Int, cols: Int, kind: SparseValueKind, masks: UnsafeRawBufferPointer,
                            rowOffsets: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer,
                            scales: UnsafeRawBufferPointer?, owner: AnyObject) throws(SparseFormatError) {
        guard rows > 0, cols > 0, rows < Int(Int32.max), cols < Int(Int32.max) else {
            throw SparseFormatError(.shape, "\(rows) × \(cols) is not a matrix the kernels take (1 … 2³¹ − 2 each)")
        }
        let groups = (cols + Self.groupSize - 1) / Self.groupSize
        let (words, overflow) = rows.multipliedReportingOverflow(by: groups)
        guard !overflow, words <= Int.max / 8 else {
            throw SparseFormatError(.shape, "\(rows) × \(cols) is too large")
        }
        try Self.requireSection(.mask, masks, bytes: words * 8, alignment: 8)
        try Self.requireSection(.rowOffsets, rowOffsets, bytes: (rows + 1) * 4, alignment: 4)
        switch (kind, scales) {
        case (.f16, nil):
            break
        case (.f16, .some):
            throw SparseFormatError(.scales, "an f16 matrix has no scales, but a scale section was given")
        case (_, nil):
            throw SparseFormatError(.scales, "an \(kind.rawValue) matrix needs \(words * 2) bytes of scales, but none were given")
        case (_, .some(let scales)):
            try Self.requireSection(.scales, scales, bytes: words * 2, alignment: 2)
        }
        guard values.count >= Self.valuePadding, let valueBase = values.baseAddress else {
            throw SparseFormatError(.values, "the value buffer has \(values.count) bytes, less than the \(Self.valuePadding) bytes of padding alone")
        }
        self.init(rows: rows, cols: cols, kind: kind,
                  masks: masks.baseAddress!.assumingMemoryBound(to: UInt64.self),
                  rowOffsets: rowOffsets.baseAddress!.assumingMemoryBound(to: UInt32.self),
                  values: valueBase.assumingMemoryBound(to: UInt8.self), valueBufferByteCount: values.count,
                  scales: scales.map { $0.baseAddress!.assumingMemoryBound(to: UInt16.self) }, owner: owner)
        try validate()
    }

    private static func requireSection(_ field: SparseFormatError.Field, _ buffer: UnsafeRawBufferPointer,
                                       bytes: Int, alignment: Int) throws(SparseFormatError) {
        guard buffer.count == bytes, let base = buffer.baseAddress else {
            throw SparseFormatError(field, "the section has \(buffer.count) bytes, the shape needs \(bytes)")
        }
        guard Int(bitPattern: base) % alignment == 0 else {
            throw SparseFormatError(field, "the section starts at an address not aligned to \(alignment) bytes")
        }
    }

    /// Checks the encoding: row_offsets[0] = 0 and each next offset equal to the bytes the row's masks
    /// imply (so monotone), no mask bit past `cols`, the value stream plus its padding inside the value
    /// buffer, scales finite and 0 for empty groups, and (s4) the unused nibble of an odd group 0.
    public func validate() throws(SparseFormatError) {
        let groups = self.groups
        let tail = cols % Self.groupSize
        let pastColumns: UInt64 = tail == 0 ? 0 : ~((UInt64(1) << UInt64(tail)) - 1)
        guard rowOffsets[0] == 0 else {
            throw SparseFormatError(.rowOffsets, row: 0, "row_offsets[0] is \(rowOffsets[0]), not 0")
        }
        for o in 0..<rows {
            var bytes = 0
            var count = 0
            for g in 0..<groups {
                let m = masks[o * groups + g]
                if g == groups - 1, m & pastColumns != 0 {
                    throw SparseFormatError(.mask, row: o, group: g,
                                            "bits past column \(cols) are set (word 0x\(String(m, radix: 16)))")
                }
                count += m.nonzeroBitCount
                bytes += kind.valueBytes(count: m.nonzeroBitCount)
            }
            let start = Int(rowOffsets[o]), next = Int(rowOffsets[o + 1])
            guard next >= start else {
                throw SparseFormatError(.rowOffsets, row: o + 1, "row_offsets[\(o + 1)] = \(next) is below row_offsets[\(o)] = \(start): offsets must not decrease")
            }
            guard next == start + bytes else {
                throw SparseFormatError(.rowOffsets, row: o + 1,
                                        "row_offsets[\(o + 1)] = \(next), but the masks of row \(o) store \(count) values in \(bytes) bytes, so it must be \(start + bytes)")
            }
        }
        let streamBytes = Int(rowOffsets[rows])
        guard streamBytes + Self.valuePadding <= valueBufferByteCount else {
            throw SparseFormatError(.values, "the value stream is \(streamBytes) bytes and needs \(Self.valuePadding) bytes of padding after it, but the buffer has \(valueBufferByteCount)")
        }
        if let scales {
            for o in 0..<rows {
                for g in 0..<groups {
                    let bits = scales[o * groups + g]
                    if bits & 0x7c00 == 0x7c00 {
                        throw SparseFormatError(.scales, row: o, group: g, "the scale (f16 0x\(String(bits, radix: 16))) is not finite")
                    }
                    if masks[o * groups + g] == 0 && bits & 0x7fff != 0 {
                        throw SparseFormatError(.scales, row: o, group: g, "the group stores no values but its scale is \(Float(Float16(bitPattern: bits))), not 0")
                    }
                }
            }
        }
        if kind == .s4 {
            // Offsets are consistent with the masks by now: every byte read here is in the stream.
            for o in 0..<rows {
                var offset = Int(rowOffsets[o])
                for g in 0..<groups {
                    let n = masks[o * groups + g].nonzeroBitCount
                    offset += (n + 1) / 2
                    if n % 2 == 1, values[offset - 1] >> 4 != 0 {
                        throw SparseFormatError(.values, row: o, group: g, "the unused high nibble after the group's \(n) values is \(values[offset - 1] >> 4), not 0")
                    }
                }
            }
        }
    }
}
