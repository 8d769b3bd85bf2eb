// Runs a pack with Core ML: compile once, load per compute-units setting, time, compare, place.
//
// Timings: compile (MLModel.compileModel, once per graph), load (MLModel(contentsOf:) per
// setting), first prediction, plan.warmup untimed predictions, plan.iterations timed ones;
// composite frames run their calls back to back with the captured feeds. Numerics compare every
// call's outputs with the expected tensors (pack.md). Placement uses MLComputePlan (iOS 17.4+ /
// macOS 14.4+). NOT COMPILED HERE (no Swift toolchain where this was written).
import CoreML
import Foundation

public struct BenchRunner {
    public static let version = "0.1.0"
    public let pack: Pack
    public var log: (String) -> Void = { print($0) }

    public init(pack: Pack) { self.pack = pack }

    /// One result per compute-units setting (`override`, else plan.compute_units, else "all").
    public func runAll(computeUnits override: [String]? = nil) async throws -> [BenchResult] {
        guard pack.plan.iterations >= 1, pack.plan.warmup >= 0 else {
            throw BenchError("plan.json needs iterations >= 1 and warmup >= 0")
        }
        let settings = override ?? pack.plan.computeUnits ?? ["all"]
        let units = try settings.map(Self.computeUnits)  // refuse a bad setting before compiling
        var compiled: [String: (url: URL, ms: Double)] = [:]
        defer { compiled.values.forEach { try? FileManager.default.removeItem(at: $0.url) } }
        for graph in Set(pack.plan.calls.values.map(\.graph)).sorted() {
            let source = try pack.artifactURL(graph)
            let start = DispatchTime.now().uptimeNanoseconds
            let url: URL
            do { url = try await MLModel.compileModel(at: source) } catch {
                throw BenchError("Core ML could not compile \(source.path): \(error.localizedDescription)")
            }
            compiled[graph] = (url, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            log("compiled \(graph) in \(Int(compiled[graph]!.ms)) ms")
        }
        var results: [BenchResult] = []
        for (name, unit) in zip(settings, units) {
            let result = try await run(name: name, units: unit, compiled: compiled)
            results.append(result)
        }
        return results
    }

    static func computeUnits(_ name: String) throws -> MLComputeUnits {
        switch name {
        case "all": return .all
        case "cpuAndNeuralEngine": return .cpuAndNeuralEngine
        case "cpuAndGPU": return .cpuAndGPU
        case "cpuOnly": return .cpuOnly
        default: throw BenchError("unknown compute units \(name); use all, cpuAndNeuralEngine, cpuAndGPU or cpuOnly")
        }
    }

    func run(name: String, units: MLComputeUnits, compiled: [String: (url: URL, ms: Double)]) async throws -> BenchResult {
        let plan = pack.plan
        let config = MLModelConfiguration()
        config.computeUnits = units
        var models: [String: MLModel] = [:], loadMs: [String: Double] = [:]
        for (graph, entry) in compiled.sorted(by: { $0.key < $1.key }) {
            let (model, ms) = try measure { try MLModel(contentsOf: entry.url, configuration: config) }
            models[graph] = model
            loadMs[graph] = ms
        }
        var feeds: [String: MLFeatureProvider] = [:]
        for (key, call) in plan.calls {
            let arrays = try call.inputs.mapValues { try pack.multiArray($0) }
            feeds[key] = try MLDictionaryFeatureProvider(dictionary: arrays)
        }
        func predict(_ key: String) throws -> MLFeatureProvider {
            guard let call = plan.calls[key], let model = models[call.graph], let feed = feeds[key] else {
                throw BenchError("plan names call \(key), which plan.calls does not define")
            }
            return try model.prediction(from: feed)
        }
        func timed(_ keys: [String]) throws -> Stats {
            for _ in 0..<plan.warmup { for key in keys { _ = try predict(key) } }
            let samples = try (0..<plan.iterations).map { _ in try measure { try keys.forEach { _ = try predict($0) } }.1 }
            return Stats(samples: samples)
        }

        var graphs: [String: GraphResult] = [:]
        for (graph, key) in plan.graphBenchmarks.sorted(by: { $0.key < $1.key }) {
            guard let entry = compiled[graph] else { throw BenchError("graph_benchmarks names \(graph), which no call uses") }
            let first = try measure { try predict(key) }.1
            let latency = try timed([key])
            var placement: Placement?
            if #available(iOS 17.4, macOS 14.4, *) {
                placement = try? await Self.placement(entry.url, config, othersAllowed: units != .cpuOnly)
            }
            graphs[graph] = GraphResult(artifact: pack.index.artifacts[graph]?.file, compileMs: entry.ms,
                                        loadMs: loadMs[graph] ?? 0, firstInferenceMs: first,
                                        latency: latency, placement: placement)
            log("\(name) \(graph): p50 \(String(format: "%.2f", latency.p50Ms)) ms")
        }
        var frames: [String: FrameResult] = [:]
        for frame in plan.frames {
            let latency = try timed(frame.calls)
            frames[frame.name] = FrameResult(objects: frame.objects, kind: frame.kind, latency: latency,
                                             fps: latency.p50Ms > 0 ? 1000 / latency.p50Ms : 0)
        }
        var numerics: [NumericRow] = []
        for (key, call) in plan.calls.sorted(by: { $0.key < $1.key }) {
            let out = try predict(key)
            for (output, tensor) in (call.expected ?? [:]).sorted(by: { $0.key < $1.key }) {
                numerics.append(compare(out.featureValue(for: output)?.multiArrayValue, tensor,
                                        NumericRow(call: key, graph: call.graph, output: output),
                                        plan.tolerances[call.graph]?[output]))
            }
        }
        let os = ProcessInfo.processInfo.operatingSystemVersionString
        return BenchResult(
            created: ISO8601DateFormatter().string(from: Date()), device: .current(),
            runner: RunnerInfo(name: "EdgeTAMBench", version: Self.version, runtime: "coreml", runtimeVersion: os,
                               timingNote: "compile_ms is MLModel.compileModel, once per graph; load_ms excludes it"),
            setting: Setting(backend: pack.index.backend, precision: pack.index.precision, threads: plan.threads,
                             computeUnits: name, warmup: plan.warmup, iterations: plan.iterations),
            pack: PackInfo(bundleDigest: pack.index.bundleDigest, path: pack.root.lastPathComponent,
                           weights: pack.index.weights),
            graphs: graphs, frames: frames, numerics: numerics,
            passed: !numerics.isEmpty && numerics.allSatisfy(\.passed),
            notes: numerics.isEmpty ? ["plan has no expected outputs: nothing was compared"] : [])
    }

    /// pack.md numerics: max_abs, ref_scale = max|expected| (1 if 0), rel_max_abs, cosine (1 when
    /// both are all zero); passes iff rel_max_abs <= tolerance and cosine >= min_cosine.
    func compare(_ actual: MLMultiArray?, _ key: String, _ row: NumericRow, _ tol: Tolerance?) -> NumericRow {
        var row = row
        row.kind = tol?.kind
        row.toleranceRelMaxAbs = tol?.relMaxAbs
        row.toleranceMinCosine = tol?.minCosine
        guard let actual else { row.error = "output missing from the prediction"; return row }
        guard let reference = try? pack.values(key) else { row.error = "cannot read expected tensor \(key)"; return row }
        let (shape, expected) = reference
        guard actual.shape.map(\.intValue) == shape else { row.error = "output shape \(actual.shape) != expected \(shape)"; return row }
        let a = doubles(actual)
        guard a.allSatisfy(\.isFinite) else { row.error = "non-finite output"; return row }
        var maxAbs = 0.0, scale = 0.0, dot = 0.0, na = 0.0, ne = 0.0
        for (x, y) in zip(a, expected) {
            maxAbs = max(maxAbs, abs(x - y)); scale = max(scale, abs(y))
            dot += x * y; na += x * x; ne += y * y
        }
        let refScale = scale == 0 ? 1 : scale
        let cosine = na == 0 && ne == 0 ? 1 : (na == 0 || ne == 0 ? 0 : dot / (na.squareRoot() * ne.squareRoot()))
        row.maxAbs = maxAbs
        row.refScale = refScale
        row.relMaxAbs = maxAbs / refScale
        row.cosine = cosine
        guard let tol else { row.error = "plan.json has no tolerance for this output"; return row }
        row.passed = maxAbs / refScale <= tol.relMaxAbs && cosine >= tol.minCosine
        return row
    }

    /// Share of MLComputePlan's estimated cost per preferred device, and the ops Core ML prefers
    /// to run on the CPU although the setting allows another device. Walks every function.
    @available(iOS 17.4, macOS 14.4, *)
    static func placement(_ compiled: URL, _ config: MLModelConfiguration, othersAllowed: Bool) async throws -> Placement? {
        let plan = try await MLComputePlan.load(contentsOf: compiled, configuration: config)
        guard case let .program(program) = plan.modelStructure else { return nil }
        var share: [String: Double] = [:], fallbacks: [String] = []
        func visit(_ block: MLModelStructure.Program.Block) {
            for op in block.operations {
                op.blocks.forEach(visit)
                guard let usage = plan.deviceUsage(for: op) else { continue }
                let device = deviceName(usage.preferred)
                share[device, default: 0] += plan.estimatedCost(of: op)?.weight ?? 0
                if device == "cpu", othersAllowed, op.operatorName != "const" {
                    fallbacks.append("\(op.operatorName) \(op.outputs.first?.name ?? "?")")
                }
            }
        }
        program.functions.values.forEach { visit($0.block) }
        let total = share.values.reduce(0, +)
        return Placement(costShare: total > 0 ? share.mapValues { $0 / total } : share, cpuFallbackOps: fallbacks)
    }

    static func deviceName(_ device: MLComputeDevice) -> String {
        switch device {
        case .cpu: return "cpu"
        case .gpu: return "gpu"
        case .neuralEngine: return "ane"
        @unknown default: return "other"
        }
    }
}

/// Runs `body` and returns its value with the wall time in milliseconds.
func measure<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = DispatchTime.now().uptimeNanoseconds
    let value = try body()
    return (value, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
}
