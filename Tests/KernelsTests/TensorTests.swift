import Testing
@testable import Kernels

/// Tensor views: offsets, shared storage, and independent copies.
@Suite struct TensorTests {
    /// A [2, 3, 4] tensor holding 0, 1, …, 23.
    static func counting() -> Tensor {
        Tensor(shape: [2, 3, 4], values: (0..<24).map(Float.init))
    }

    @Test func emptyTensorsConvertWithoutTouchingMemory() {
        for shape in [[0], [3, 0], [0, 5]] {
            #expect(Tensor(shape: shape, values: []).count == 0)
            #expect(Tensor(shape: shape, float16Bits: []).float16Bits.isEmpty)
            #expect(Tensor(shape: shape, bfloat16Bits: []).bfloat16Bits.isEmpty)
        }
    }

    @Test func newStorageIsZeroedAndAlignedForVectors() {
        let t = Tensor(zeros: [7, 13])
        #expect(t.count == 91 && t.rank == 2 && t.rowCount == 7 && t.rowLength == 13)
        #expect(t.scalars.allSatisfy { $0 == 0 })
        #expect(UInt(bitPattern: t.storage.base) % 64 == 0)
        #expect(Tensor(shape: [3], repeating: 2.5).scalars == [2.5, 2.5, 2.5])
    }

    @Test func rowsAreEverythingButTheLastDimension() {
        let t = Self.counting()
        #expect(t.rowCount == 6 && t.rowLength == 4)
        let scalar = Tensor(shape: [], values: [5])
        #expect(scalar.count == 1 && scalar.rowLength == 1 && scalar.rowCount == 1)
        let empty = Tensor(zeros: [3, 0])
        #expect(empty.count == 0 && empty.rowCount == 0)
    }

    @Test func subscriptViewsStartAtTheirRowAndShareStorage() {
        let t = Self.counting()
        let second = t[1]
        #expect(second.shape == [3, 4] && second.offset == 12)
        #expect(second.scalars == (12..<24).map(Float.init))
        let row = t[1][2]
        #expect(row.shape == [4] && row.offset == 20 && row.scalars == [20, 21, 22, 23])
        row.pointer[1] = -1
        #expect(t.pointer[21] == -1)
        #expect(second.scalars[9] == -1)
        #expect(row.storage === t.storage)
    }

    @Test func slicesKeepRankAndOffsetByWholeRows() {
        let t = Self.counting()
        let middle = t[0].slice(1..<3)
        #expect(middle.shape == [2, 4] && middle.offset == 4)
        #expect(middle.scalars == (4..<12).map(Float.init))
        let inner = t[1].slice(1..<3)  // a slice of a view starts past the view's own offset
        #expect(inner.offset == 16 && inner.scalars == (16..<24).map(Float.init))
        let tail = t.slice(1..<2)
        #expect(tail.shape == [1, 3, 4] && tail.offset == 12)
        let none = t.slice(2..<2)
        #expect(none.count == 0 && none.shape == [0, 3, 4])
        middle.zero()
        #expect(t.scalars == [0, 1, 2, 3] + [Float](repeating: 0, count: 8) + (12..<24).map(Float.init))
    }

    @Test func reshapeIsAViewWithTheSameOffset() {
        let t = Self.counting()
        let view = t[1].reshaped([2, 6])
        #expect(view.shape == [2, 6] && view.offset == 12 && view.rowLength == 6)
        #expect(view[1].scalars == (18..<24).map(Float.init))
        view[0].pointer[0] = 100
        #expect(t.pointer[12] == 100)
    }

    @Test func copiesAreIndependentOfTheOriginal() {
        let t = Self.counting()
        let view = t[1]
        let copy = view.copy()
        #expect(copy.storage !== t.storage && copy.offset == 0 && copy.shape == [3, 4])
        #expect(copy.scalars == view.scalars)
        copy.pointer[0] = -5
        #expect(t.pointer[12] == 12)
        t.pointer[13] = -6
        #expect(copy.pointer[1] == 13)
    }

    @Test func assignCopiesValuesIntoAView() {
        let t = Self.counting()
        let source = Tensor(shape: [4], values: [9, 8, 7, 6])
        t[0][1].assign(source)
        #expect(Array(t.scalars[4..<8]) == [9, 8, 7, 6])
        #expect(t.pointer[3] == 3 && t.pointer[8] == 8)
        source.pointer[0] = 0
        #expect(t.pointer[4] == 9)
    }

    @Test func borrowedStorageKeepsItsOwnerAlive() {
        final class Owner {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 4)
            init() { buffer.initialize(repeating: 1.5, count: 4) }
            deinit { buffer.deallocate() }
        }
        weak var weakOwner: Owner?
        var storage: TensorStorage?
        do {
            let owner = Owner()
            weakOwner = owner
            storage = TensorStorage(borrowing: owner.buffer, count: 4, owner: owner)
        }
        #expect(weakOwner != nil)
        var t: Tensor? = Tensor(shape: [2, 2], storage: storage!)
        storage = nil
        #expect(weakOwner != nil)  // the view holds the storage, which holds the owner
        #expect(t?.scalars == [1.5, 1.5, 1.5, 1.5])
        t = nil
        #expect(weakOwner == nil)  // and the last view lets both go
    }

    @Test func withUnsafeBuffersSeeOnlyTheView() {
        let t = Self.counting()
        let view = t[1][0]
        #expect(view.withUnsafeBufferPointer { Array($0) } == [12, 13, 14, 15])
        view.withUnsafeMutableBufferPointer { $0[3] = 0 }
        #expect(t.pointer[15] == 0 && t.pointer[16] == 16)
    }
}
