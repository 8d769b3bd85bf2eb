// The result JSON (benchmarks/schema/result.v1.schema.json), written only through Codable.
//
// Every encoded struct names its place in the schema in a `/// JSON:` line and lists its keys
// in explicit CodingKeys; tests/ios_harness checks each key exists there and that every
// required key is present. Nullable required keys (threads, bundle_digest) are encoded as null.
// NOT COMPILED HERE (no Swift toolchain where this was written); see ios_harness/README.md.
import Foundation

/// JSON: #/$defs/stats
public struct Stats: Encodable {
    public let n: Int
    public let minMs, p50Ms, p90Ms, maxMs, meanMs, trimmedMeanMs: Double
    public let samplesMs: [Double]
    enum CodingKeys: String, CodingKey {
        case n
        case minMs = "min_ms", p50Ms = "p50_ms", p90Ms = "p90_ms", maxMs = "max_ms"
        case meanMs = "mean_ms", trimmedMeanMs = "trimmed_mean_ms", samplesMs = "samples_ms"
    }

    /// Percentiles interpolate linearly (numpy's default); the trimmed mean drops the lowest and
    /// highest 10% of samples, at least one each when there are 3 or more.
    public init(samples: [Double]) {
        let s = samples.sorted()
        func percentile(_ q: Double) -> Double {
            let pos = q * Double(s.count - 1), lo = Int(pos.rounded(.down)), hi = Int(pos.rounded(.up))
            return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
        }
        let k = s.count >= 3 ? max(1, s.count / 10) : 0
        let kept = s[k..<(s.count - k)]
        n = s.count
        minMs = s.first ?? 0
        maxMs = s.last ?? 0
        p50Ms = percentile(0.5)
        p90Ms = percentile(0.9)
        meanMs = s.reduce(0, +) / Double(s.count)
        trimmedMeanMs = kept.reduce(0, +) / Double(kept.count)
        samplesMs = samples
    }
}

/// JSON: #/$defs/graph/properties/placement
public struct Placement: Encodable {
    public let costShare: [String: Double]
    public let cpuFallbackOps: [String]
    enum CodingKeys: String, CodingKey {
        case costShare = "cost_share"
        case cpuFallbackOps = "cpu_fallback_ops"
    }
}

/// JSON: #/$defs/graph
public struct GraphResult: Encodable {
    public let artifact: String?
    public let compileMs: Double?
    public let loadMs: Double
    public let firstInferenceMs: Double
    public let latency: Stats
    public let placement: Placement?
    enum CodingKeys: String, CodingKey {
        case artifact, latency, placement
        case compileMs = "compile_ms", loadMs = "load_ms", firstInferenceMs = "first_inference_ms"
    }
}

/// JSON: #/$defs/frame
public struct FrameResult: Encodable {
    public let objects: Int
    public let kind: String
    public let latency: Stats
    public let fps: Double
    enum CodingKeys: String, CodingKey { case objects, kind, latency, fps }
}

/// JSON: #/$defs/numeric
public struct NumericRow: Encodable {
    public var call, graph, output: String
    public var kind: String?
    public var maxAbs, refScale, relMaxAbs, cosine: Double?
    public var toleranceRelMaxAbs, toleranceMinCosine: Double?
    public var passed = false
    public var error: String?
    enum CodingKeys: String, CodingKey {
        case call, graph, output, kind, cosine, passed, error
        case maxAbs = "max_abs", refScale = "ref_scale", relMaxAbs = "rel_max_abs"
        case toleranceRelMaxAbs = "tolerance_rel_max_abs", toleranceMinCosine = "tolerance_min_cosine"
    }
}

/// JSON: #/properties/device
public struct DeviceInfo: Encodable {
    public let model, os, arch: String
    public let cores: Int
    public let memoryBytes: UInt64?
    public let chipset: String?
    public let emulated: Bool
    enum CodingKeys: String, CodingKey {
        case model, os, arch, cores, chipset, emulated
        case memoryBytes = "memory_bytes"
    }

    /// This device: hardware model identifier (e.g. an iPhone's `iPhoneNN,N`), OS, CPU.
    public static func current() -> DeviceInfo {
        var sys = utsname()
        uname(&sys)
        let machine = withUnsafeBytes(of: &sys.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #if os(macOS)
        let (model, chipset, os) = (sysctlString("hw.model") ?? machine, sysctlString("machdep.cpu.brand_string"), "macOS")
        #else
        let (model, chipset, os): (String, String?, String) = (machine, nil, "iOS")
        #endif
        #if arch(arm64)
        let arch = "arm64"
        #else
        let arch = "x86_64"
        #endif
        let emulated = ProcessInfo.processInfo.environment["SIMULATOR_DEVICE_NAME"] != nil
        let info = ProcessInfo.processInfo
        return DeviceInfo(model: model, os: "\(os) \(info.operatingSystemVersionString)", arch: arch,
                          cores: info.processorCount, memoryBytes: info.physicalMemory,
                          chipset: chipset, emulated: emulated)
    }

    static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        return String(cString: buffer)
    }
}

/// JSON: #/properties/runner
public struct RunnerInfo: Encodable {
    public let name, version, runtime, runtimeVersion: String
    public let timingNote: String?
    enum CodingKeys: String, CodingKey {
        case name, version, runtime
        case runtimeVersion = "runtime_version", timingNote = "timing_note"
    }
}

/// JSON: #/properties/setting
public struct Setting: Encodable {
    public let backend, precision: String
    public let threads: Int?
    public let computeUnits: String?
    public let warmup, iterations: Int
    enum CodingKeys: String, CodingKey {
        case backend, precision, threads, warmup, iterations
        case computeUnits = "compute_units"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(backend, forKey: .backend)
        try c.encode(precision, forKey: .precision)
        try c.encode(threads, forKey: .threads)  // required; null = runner default
        try c.encode(computeUnits, forKey: .computeUnits)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(iterations, forKey: .iterations)
    }
}

/// JSON: #/properties/pack
public struct PackInfo: Encodable {
    public let bundleDigest: String?
    public let path: String?
    public let weights: JSONValue?
    enum CodingKeys: String, CodingKey {
        case path, weights
        case bundleDigest = "bundle_digest"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(bundleDigest, forKey: .bundleDigest)  // required, may be null
        try c.encode(path, forKey: .path)
        try c.encode(weights ?? .null, forKey: .weights)
    }
}

/// JSON: #
public struct BenchResult: Encodable {
    public let format = "edgetam-bench-result"
    public let version = 1
    public let created: String
    public let device: DeviceInfo
    public let runner: RunnerInfo
    public let setting: Setting
    public let pack: PackInfo
    public let graphs: [String: GraphResult]
    public let frames: [String: FrameResult]
    public let numerics: [NumericRow]
    public let passed: Bool
    public let notes: [String]
    enum CodingKeys: String, CodingKey {
        case format, version, created, device, runner, setting, pack, graphs, frames, numerics, passed, notes
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Writes `<dir>/coreml-<precision>-<compute units>-<device model>.json` atomically.
    @discardableResult
    public func write(to dir: URL) throws -> URL {
        let stem = ["coreml", setting.precision, setting.computeUnits ?? "default", device.model]
            .joined(separator: "-").replacingOccurrences(of: ",", with: "_")
        let url = dir.appendingPathComponent(stem).appendingPathExtension("json")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try json().write(to: url, options: .atomic)
        return url
    }

    /// The JSON between marker lines, for pulling results out of a device log or xcresult.
    public func markerBlock() throws -> String {
        let text = String(decoding: try json(), as: UTF8.self)
        return "EDGETAM_BENCH_RESULT_BEGIN\n\(text)\nEDGETAM_BENCH_RESULT_END"
    }
}
