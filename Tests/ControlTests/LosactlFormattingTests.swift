import Control
import Testing
@testable import losactl

/// What losactl draws: durations, tables and the progress bars of `watch`.
@Suite struct LosactlFormattingTests {
    @Test func durationsReadAsPeopleSayThem() {
        #expect(Quantities.duration(0) == "0s")
        #expect(Quantities.duration(59.4) == "59s")
        #expect(Quantities.duration(185) == "3m05s")
        #expect(Quantities.duration(7620) == "2h07m")
        #expect(Quantities.duration(273_600) == "3d04h")
        #expect(Quantities.duration(-.infinity) == "?" && Quantities.duration(.nan) == "?")
        #expect(Formatting.grouped(134_515_008) == "134,515,008" && Formatting.grouped(-1000) == "-1,000")
        #expect(Quantities.bytes(512) == "512 B" && Quantities.bytes(1 << 30) == "1.0 GiB")
        #expect(Quantities.percent(0.429) == "42%" && Quantities.percent(1.5) == "100%")
    }

    @Test func tablesPadColumnsAndRightAlignNumbers() {
        var table = TextTable(["ID", "MODEL", "NOW"], rightAligned: [0])
        table.add(["7", "a", "running"])
        table.add(["12", "longer-name", "-"])
        #expect(table.rendered == "ID  MODEL        NOW\n 7  a            running\n12  longer-name  -")
    }

    @Test func watchDrawsBarsForTheJobTheIterationAndTheStep() {
        let job = FakeManagerService.jobs[1]
        let lines = ProgressDisplay.bars(job)
        #expect(lines.count == 4)
        #expect(lines[0] == "job 2 tiny-llama: running")
        #expect(lines[1].hasPrefix("  job        [" + String(repeating: "█", count: 12) + String(repeating: "░", count: 18) + "] 42%  train  ETA 2m00s"))
        #expect(lines[2].hasSuffix("] 3/5") && lines[2].contains(String(repeating: "█", count: 18) + String(repeating: "░", count: 12)))
        #expect(lines[3].hasSuffix("] 7/20  loss 2.5"))
        #expect(ProgressDisplay.bars(FakeManagerService.jobs[0]) == ["job 1 SmolLM2-135M-Instruct.Q4_1.gguf: succeeded"])
        #expect(ProgressDisplay.bar(-1) == "[" + String(repeating: "░", count: 30) + "]")
        #expect(ProgressDisplay.bar(2) == "[" + String(repeating: "█", count: 30) + "]")
    }
}
