/// A binary min-heap over an array that keeps its capacity between uses, so a
/// tokenizer can reuse one heap for every word it merges.
struct MinHeap<Element: Comparable> {
    private(set) var storage: [Element] = []

    var isEmpty: Bool { storage.isEmpty }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[child] < storage[parent] else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let last = storage.popLast() else { return nil }
        guard !storage.isEmpty else { return last }
        let top = storage[0]
        storage[0] = last
        var parent = 0
        let count = storage.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            let smaller = right < count && storage[right] < storage[left] ? right : left
            guard storage[smaller] < storage[parent] else { break }
            storage.swapAt(smaller, parent)
            parent = smaller
        }
        return top
    }
}
