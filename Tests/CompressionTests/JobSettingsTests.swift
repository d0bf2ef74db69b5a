import Compression
import Foundation
import ModelFormats
import Testing
import Transformer

/// The one declaration of a job's settings: every entry point parses through it.
@Suite struct JobSettingsTests {
    func refused(_ key: JobSettingKey, _ value: JobSettings.Value) -> CompressionError? {
        var settings = JobSettings.defaults
        do {
            try settings.set(key, value)
            return nil
        } catch {
            return error
        }
    }

    @Test func anUnknownWordIsRefusedNamingTheKeyAndEveryAllowedValue() {
        #expect(refused(.method, .text("guess"))?.description
                == #"method = "guess" is not allowed; expected one of "magnitude", "wanda", "sparsegpt""#)
        #expect(refused(.recovery, .text("LoSA"))?.description
                == #"recovery = "LoSA" is not allowed; expected one of "losa", "lora", "none""#)
        #expect(refused(.profile, .text("fast"))?.description
                == #"profile = "fast" is not allowed; expected one of "quick", "standard", "paper""#)
        #expect(refused(.exportType, .text("q5_k"))?.description
                == #"export_type = "q5_k" is not allowed; expected one of "auto", "q8_0", "q4_0", "f16", "bf16", "f32""#)
        #expect(refused(.allocation, .number(1)) != nil, "a number is no word")
    }

    @Test func textAndNumbersAreTheSameValueFromEveryEntryPoint() throws {
        var fromText = JobSettings.defaults, fromNumber = JobSettings.defaults
        try fromText.set(.sparsity, .text("0.7"))
        try fromNumber.set(.sparsity, .number(0.7))
        try fromText.set(.iterations, .text("3"))
        try fromNumber.set(.iterations, .number(3))
        #expect(fromText == fromNumber && fromText.sparsity == 0.7 && fromText.budget?.iterations == 3)
        #expect(refused(.sparsity, .text("half"))?.description
                == #"sparsity = "half" is not allowed; expected a fraction of weights to zero, from 0.01 to 0.95"#)
        #expect(refused(.sparsity, .number(0.99)) != nil && refused(.sparsity, .number(.nan)) != nil)
        #expect(refused(.iterations, .number(12)) != nil && refused(.iterations, .number(2.5)) != nil)
        try fromText.set(.iterations, .number(0))
        #expect(fromText.budget == nil, "0 keeps the profile's value")
    }

    @Test func outputsAreASetOfAtLeastOneKnownFile() throws {
        var settings = JobSettings.defaults
        #expect(settings.outputs == .all && settings.outputs.list == [.gguf, .sparse])
        try settings.set(.outputs, .list(["sparse"]))
        #expect(settings.outputs.list == [.sparse])
        try settings.set(.outputs, .list(["sparse", "gguf", "gguf"]))
        #expect(settings.outputs == .all)
        #expect(refused(.outputs, .list([]))?.description == #"outputs = [] is not allowed; expected a list of one or more of "gguf", "sparse""#)
        #expect(refused(.outputs, .list(["gguf", "onnx"])) != nil && refused(.outputs, .text("gguf")) != nil)
        #expect(try settings.applying([.outputs: .list(["gguf"])]).compressionSettings().outputs == [.gguf])
    }

    @Test func anNOfMPatternBringsItsSparsityAndRefusesAnother() throws {
        let twoOfFour = try JobSettings.defaults.applying([.pattern: .text("2:4")])
        #expect(twoOfFour.sparsity == 0.5)
        #expect(try JobSettings.defaults.applying([.pattern: .text("1:4")]).sparsity == 0.75)
        #expect(throws: CompressionError.invalidSetting(field: "sparsity", value: "0.7", allowed: "0.5, the sparsity pattern \"4:8\" makes")) {
            try JobSettings.defaults.applying([.pattern: .text("4:8"), .sparsity: .number(0.7)])
        }
        #expect(refused(.pattern, .text("1:128")) != nil, "a pattern whose sparsity is out of range")
    }

    @Test func theEngineGetsTheProfileWithTheChoicesOnTop() throws {
        let settings = try JobSettings.defaults.applying([.profile: .text("quick"), .method: .text("sparsegpt"),
                                                          .trainingSamples: .number(40), .exportType: .text("q8_0")])
        let engine = try settings.compressionSettings()
        var expected = CompressionSettings(profile: .quick)
        expected.method = .sparseGPT
        expected.trainingSamples = 40
        expected.exportType = .q8_0
        #expect(engine == expected)
    }

    @Test func storedSettingsRoundTripAndOldRowsWithoutOutputsStillRead() throws {
        let settings = try JobSettings.defaults.applying([.pattern: .text("2:4"), .calibrationWindows: .number(8)])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(settings), as: UTF8.self)
        #expect(json.contains(#""outputs":["gguf","sparse"]"#) && json.contains(#""pattern":"2:4""#))
        #expect(try JSONDecoder().decode(JobSettings.self, from: Data(json.utf8)) == settings)
        let old = #"{"allocation":"rmi","export_type":"auto","method":"wanda","pattern":"unstructured","profile":"quick","recovery":"losa","sparsity":0.5}"#
        #expect(try JSONDecoder().decode(JobSettings.self, from: Data(old.utf8)).outputs == [.gguf])
    }

    @Test func theObjectiveNamesItsTermsAndTheirKnobs() throws {
        let plain = try JobSettings.defaults.applying([.objective: .text("ce")]).compressionSettings()
        #expect(plain.objective == .crossEntropy && !plain.objective.needsTeacher)
        let kd = try JobSettings.defaults.applying([.objective: .text("ce+kd+hidden"), .kdTemperature: .text("2"),
                                                    .hiddenLossWeight: .number(0.5)]).compressionSettings()
        #expect(kd.objective == .init(crossEntropyWeight: 1, distillationWeight: 1, hiddenStateWeight: 0.5, temperature: 2))
        #expect(try JobSettings.defaults.applying([.objective: .text("kd")]).compressionSettings().objective
                == .init(crossEntropyWeight: 0, distillationWeight: 1, hiddenStateWeight: 0, temperature: 1))
        #expect(refused(.objective, .text("mse"))?.description.hasPrefix(
            #"objective = "mse" is not allowed; expected one of "ce", "kd", "ce+kd", "ce+hidden", "kd+hidden", "ce+kd+hidden""#) == true)
        #expect(refused(.kdTemperature, .number(0))?.description
                == #"kd_temperature = 0 is not allowed; expected a distillation temperature from 0.25 to 16.0"#)
        #expect(refused(.hiddenLossWeight, .text("-1")) != nil && refused(.kdTemperature, .number(.infinity)) != nil)
    }

    @Test func theDefaultObjectiveLeavesTheStoredJSONAsItWas() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(JobSettings.defaults), as: UTF8.self)
        #expect(!json.contains("objective") && !json.contains("kd_temperature"))
        let chosen = try JobSettings.defaults.applying([.objective: .text("ce+kd"), .kdTemperature: .number(2)])
        let text = String(decoding: try encoder.encode(chosen), as: UTF8.self)
        #expect(text.contains(#""kd_temperature":2"#) && text.contains(#""objective":"ce+kd""#))
        #expect(try JSONDecoder().decode(JobSettings.self, from: Data(text.utf8)) == chosen)
    }

    @Test func weightReconstructionIsAWordThatTheDefaultLeavesOutOfTheStoredJSON() throws {
        // JobSettings.defaults is the standard profile: the CPU budgets refit, paper does not.
        #expect(try JobSettings.defaults.compressionSettings().weightReconstruction == .leastSquares)
        #expect(try JobSettings.defaults.applying([.profile: .text("paper")]).compressionSettings().weightReconstruction
                == WeightReconstruction.none)
        let chosen = try JobSettings.defaults.applying([.weightReconstruction: .text("none")])
        #expect(try chosen.compressionSettings().weightReconstruction == WeightReconstruction.none)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(!String(decoding: try encoder.encode(JobSettings.defaults), as: UTF8.self).contains("weight_reconstruction"))
        let text = String(decoding: try encoder.encode(chosen), as: UTF8.self)
        #expect(text.contains(#""weight_reconstruction":"none""#))
        #expect(try JSONDecoder().decode(JobSettings.self, from: Data(text.utf8)) == chosen)
        #expect(try chosen.applying([.weightReconstruction: .text("")]) == JobSettings.defaults)
        #expect(refused(.weightReconstruction, .text("lstsq"))?.description.hasPrefix(
            #"weight_reconstruction = "lstsq" is not allowed; expected one of "none", "least-squares""#) == true)
    }

    @Test func theCPUProfilesDistilAndPaperKeepsLOSAsRecipe() throws {
        for (profile, objective) in [("quick", TrainingObjective(distillationWeight: 1)), ("standard", .init(distillationWeight: 1)),
                                     ("paper", .crossEntropy)] {
            let s = try JobSettings.defaults.applying([.profile: .text(profile)]).compressionSettings()
            #expect(s.objective == objective, "\(profile)")
            #expect(CompressionSettings(profile: CompressionProfile(rawValue: profile)!).objective == objective)
        }
        // Named explicitly, an objective is kept whatever the profile; "" gives the profile's back.
        let ce = try JobSettings.defaults.applying([.objective: .text("ce")])
        #expect(try ce.compressionSettings().objective == .crossEntropy)
        #expect(try ce.applying([.objective: .text("")]) == JobSettings.defaults)
    }
}
