/// Picking the lowest-scoring entries of a row, the same way for every method.
///
/// A score (≥ 0) and its column are packed into one UInt64 key: the score's
/// bit pattern (monotone for non-negative Floats) in the high half, the column
/// in the low half. Keys are then distinct, so "the k smallest keys" is one
/// well-defined set: lower score first, and on equal scores the lower column —
/// whatever order the selection algorithm visits them in.
enum ScoreSelection {
    /// The key of a non-negative `score` at `column`; forced keys sort before every one of these.
    @inline(__always)
    static func key(score: Float, column: Int) -> UInt64 {
        // +1 keeps even a zero score above the forced keys (whose high half is 0).
        (UInt64(score.bitPattern) + 1) << 32 | UInt64(truncatingIfNeeded: column)
    }

    /// The key of an entry that must be pruned before any scored one (a weight that was already zero).
    @inline(__always)
    static func forcedKey(column: Int) -> UInt64 { UInt64(truncatingIfNeeded: column) }

    /// The column a key belongs to.
    @inline(__always)
    static func column(of key: UInt64) -> Int { Int(truncatingIfNeeded: key & 0xFFFF_FFFF) }

    /// Reorders `keys` so that its first `count` entries are its `count` smallest (in no particular order).
    ///
    /// Quickselect (Hoare, 1961) with a median-of-three pivot, in place and
    /// allocation free; expected linear time.
    static func partitionSmallest(_ keys: UnsafeMutableBufferPointer<UInt64>, count: Int) {
        var low = 0, high = keys.count - 1
        guard count > 0, count < keys.count else { return }
        let target = count - 1  // the element that must end at `target` with smaller keys before it
        while low < high {
            let middle = low + (high - low) / 2
            // Median of three as pivot value.
            let a = keys[low], b = keys[middle], c = keys[high]
            let pivot = max(min(a, b), min(max(a, b), c))
            var i = low, j = high
            while i <= j {
                while keys[i] < pivot { i += 1 }
                while keys[j] > pivot { j -= 1 }
                if i <= j {
                    keys.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // Now keys[low...j] ≤ pivot ≤ keys[i...high], and j < i.
            if target <= j {
                high = j
            } else if target >= i {
                low = i
            } else {
                return
            }
        }
    }
}
