import Testing
@testable import Kernels

/// Reading /proc/self/status's "kB" fields, whatever the kernel's padding.
@Suite struct ProcessMemoryTests {
    @Test func fieldsAreReadWithTheirPaddingAndWithoutIt() {
        // As the kernel writes them ("%8lu kB" after a tab): padded below 10^7 kB, not from there on.
        let status = "Name:\tlosad\nVmPeak:\t12345678 kB\nVmHWM:\t10399040 kB\nVmRSS:\t 2240116 kB\nThreads:\t3\n"
        #expect(ProcessMemory.field("VmHWM:", in: status) == 10_399_040 * 1024)
        #expect(ProcessMemory.field("VmRSS:", in: status) == 2_240_116 * 1024)
        #expect(ProcessMemory.field("VmSwap:", in: status) == 0)
    }

    @Test func thisProcessHasAResidentPeak() {
        let now = ProcessMemory.residentBytes
        #expect(now > 1 << 20 && ProcessMemory.peakResidentBytes >= now)
    }
}
