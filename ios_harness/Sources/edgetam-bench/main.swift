// edgetam-bench: run a Core ML bench pack on this Mac and write one result JSON per setting.
//
//   swift run -c release edgetam-bench --pack PACK --out DIR [--compute-units all,cpuOnly]
//
// Exit 0: every numerics row passed; 1: some output out of tolerance; 2: bad input.
// NOT COMPILED HERE (no Swift toolchain where this was written); see ios_harness/README.md.
import EdgeTAMBench
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(2)
}

var options: [String: String] = [:]
var args = CommandLine.arguments.dropFirst()
while let flag = args.popFirst() {
    guard ["--pack", "--out", "--compute-units"].contains(flag), let value = args.popFirst() else {
        fail("usage: edgetam-bench --pack PACK --out DIR [--compute-units all,cpuAndNeuralEngine,cpuAndGPU,cpuOnly]")
    }
    options[flag] = value
}
guard let packPath = options["--pack"] else { fail("--pack PACK is required (a folder written by `edgetam-export bench pack`)") }
let outDir = URL(fileURLWithPath: options["--out"] ?? ".")
let units = options["--compute-units"].map { $0.split(separator: ",").map(String.init) }

do {
    let pack = try Pack(at: URL(fileURLWithPath: packPath))
    let runner = BenchRunner(pack: pack)
    let results = try await runner.runAll(computeUnits: units)
    for result in results {
        let url = try result.write(to: outDir)
        print("\(result.passed ? "PASS" : "FAIL") \(result.setting.computeUnits ?? "") -> \(url.path)")
    }
    exit(results.allSatisfy(\.passed) ? 0 : 1)
} catch let error as BenchError {
    fail(error.description)
} catch {
    fail("\(error)")
}
