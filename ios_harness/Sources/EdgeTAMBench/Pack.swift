// Reading a bench pack (benchmarks/schema/pack.md): index.json, plan.json and raw tensors.
//
// Everything the runner does comes from these two files: graph names, tensor names, shapes,
// dtypes, call order, iterations and tolerances. Nothing about EdgeTAM is written here.
// NOT COMPILED HERE (no Swift toolchain where this was written); see ios_harness/README.md.
import CoreML
import Foundation

/// A bad pack or a Core ML failure, with one line saying what is wrong.
public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Any JSON value (for the pack's free-form `weights` object, copied into the result).
public enum JSONValue: Codable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Double.self) { self = .number(v) } else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) } else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(v): try c.encode(v)
        case let .number(v): try c.encode(v)
        case let .string(v): try c.encode(v)
        case let .array(v): try c.encode(v)
        case let .object(v): try c.encode(v)
        }
    }
}

/// One input or output of an artifact, in the graph's positional order.
public struct TensorSpec: Decodable {
    public let name, dtype: String
    public let shape: [Int]
    enum CodingKeys: String, CodingKey { case name, dtype, shape }
}

public struct ArtifactEntry: Decodable {
    public let file: String
    public let inputs, outputs: [TensorSpec]
    enum CodingKeys: String, CodingKey { case file, inputs, outputs }
}

public struct TensorEntry: Decodable {
    public let file, dtype: String
    public let shape: [Int]
    public let nbytes: Int
    enum CodingKeys: String, CodingKey { case file, dtype, shape, nbytes }
}

/// index.json: what is in the pack.
public struct PackIndex: Decodable {
    public let format, backend, precision: String
    public let version: Int
    public let bundleDigest: String?
    public let weights: JSONValue?
    public let artifacts: [String: ArtifactEntry]
    public let tensors: [String: TensorEntry]
    enum CodingKeys: String, CodingKey {
        case format, version, backend, precision, weights, artifacts, tensors, bundleDigest = "bundle_digest"
    }
}

/// One reproducible call: a graph, its feeds (input name -> tensor key) and expected outputs.
public struct PlanCall: Decodable {
    public let graph: String
    public let inputs: [String: String]
    public let expected: [String: String]?
    enum CodingKeys: String, CodingKey { case graph, inputs, expected }
}

/// A composite "whole frame": calls run back to back with their captured feeds.
public struct PlanFrame: Decodable {
    public let name, kind: String
    public let objects: Int
    public let calls: [String]
    enum CodingKeys: String, CodingKey { case name, objects, kind, calls }
}

public struct Tolerance: Decodable {
    public let kind: String?
    public let relMaxAbs, minCosine: Double
    enum CodingKeys: String, CodingKey { case kind, relMaxAbs = "rel_max_abs", minCosine = "min_cosine" }
}

/// plan.json: what to run, how often, and the tolerances (per graph, per output).
public struct BenchPlan: Decodable {
    public let format: String
    public let version, warmup, iterations: Int
    public let threads: Int?
    public let computeUnits: [String]?
    public let calls: [String: PlanCall]
    public let graphBenchmarks: [String: String]
    public let frames: [PlanFrame]
    public let tolerances: [String: [String: Tolerance]]
    enum CodingKeys: String, CodingKey {
        case format, version, warmup, iterations, threads, calls, frames, tolerances
        case computeUnits = "compute_units", graphBenchmarks = "graph_benchmarks"
    }
}

/// A pack on disk. Tensors are read lazily, by the keys the plan names.
public struct Pack {
    public let root: URL
    public let index: PackIndex
    public let plan: BenchPlan

    public init(at root: URL) throws {
        self.root = root
        index = try Pack.decode(PackIndex.self, root.appendingPathComponent("index.json"))
        plan = try Pack.decode(BenchPlan.self, root.appendingPathComponent("plan.json"))
        guard index.format == "edgetam-bench-pack", index.version == 1,
              plan.format == "edgetam-bench-plan", plan.version == 1 else {
            throw BenchError("\(root.path) is not a version-1 bench pack; re-export it with `edgetam-export bench pack`")
        }
        for (key, call) in plan.calls where index.artifacts[call.graph] == nil {
            throw BenchError("plan call \(key) names graph \(call.graph), which index.json does not list")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T {
        guard let data = try? Data(contentsOf: url) else { throw BenchError("cannot read \(url.path)") }
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw BenchError("\(url.lastPathComponent) does not match the pack format: \(error)")
        }
    }

    public func artifactURL(_ graph: String) throws -> URL {
        guard let entry = index.artifacts[graph] else { throw BenchError("no artifact for graph \(graph)") }
        return root.appendingPathComponent(entry.file)
    }

    func entry(_ key: String) throws -> TensorEntry {
        guard let e = index.tensors[key] else { throw BenchError("tensor \(key) is not in index.json") }
        return e
    }

    func rawData(_ key: String) throws -> (TensorEntry, Data) {
        let e = try entry(key)
        let url = root.appendingPathComponent(e.file)
        guard let data = try? Data(contentsOf: url, options: .mappedIfSafe) else { throw BenchError("cannot read \(url.path)") }
        guard data.count == e.nbytes, e.nbytes == e.shape.reduce(1, *) * (itemSizes[e.dtype] ?? 0) else {
            throw BenchError("\(e.file) holds \(data.count) bytes; index.json says \(e.nbytes) bytes of \(e.dtype) \(e.shape)")
        }
        return (e, data)
    }

    /// The tensor as an `MLMultiArray` (C-order strides) to feed a model.
    public func multiArray(_ key: String) throws -> MLMultiArray {
        let (e, data) = try rawData(key)
        let type: MLMultiArrayDataType
        switch e.dtype {
        case "float32": type = .float32
        case "float16": type = .float16
        case "int32": type = .int32
        default: throw BenchError("tensor \(key) has dtype \(e.dtype), which MLMultiArray cannot hold")
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        data.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        return try MLMultiArray(dataPointer: buffer, shape: e.shape.map { NSNumber(value: $0) },
                                dataType: type, strides: cStrides(e.shape).map { NSNumber(value: $0) },
                                deallocator: { $0.deallocate() })
    }

    /// The tensor's values widened to Double (for comparing outputs).
    public func values(_ key: String) throws -> (shape: [Int], values: [Double]) {
        let (e, data) = try rawData(key)
        guard itemSizes[e.dtype] != nil else { throw BenchError("tensor \(key) has unknown dtype \(e.dtype)") }
        return (e.shape, data.withUnsafeBytes { raw in (0..<e.shape.reduce(1, *)).map { element(raw, $0, e.dtype) } })
    }
}

let itemSizes = ["float32": 4, "float16": 2, "float64": 8, "int32": 4, "int64": 8, "uint8": 1]

/// Element `i` of little-endian raw data with pack dtype `dtype`, widened to Double.
func element(_ raw: UnsafeRawBufferPointer, _ i: Int, _ dtype: String) -> Double {
    switch dtype {
    case "float32": return Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self))
    case "float16": return halfToDouble(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
    case "float64": return raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self)
    case "int32": return Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
    case "int64": return Double(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
    case "uint8": return Double(raw[i])
    default: return .nan
    }
}

/// C-order (row-major) element strides of a shape.
func cStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    for d in stride(from: shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
    return strides
}

/// IEEE 754 half -> Double without `Float16` (unavailable on Intel Macs).
func halfToDouble(_ bits: UInt16) -> Double {
    let sign: Double = bits & 0x8000 != 0 ? -1 : 1
    let exponent = Int((bits >> 10) & 0x1F), fraction = Double(bits & 0x3FF)
    if exponent == 0 { return sign * fraction * pow(2, -24) }
    if exponent == 0x1F { return fraction == 0 ? sign * .infinity : .nan }
    return sign * (1 + fraction / 1024) * pow(2, Double(exponent - 15))
}

/// An output `MLMultiArray` as Doubles in C order, honouring its strides (Core ML may pad rows).
func doubles(_ array: MLMultiArray) -> [Double] {
    let shape = array.shape.map(\.intValue)
    let dtype = [MLMultiArrayDataType.float32: "float32", .float16: "float16", .double: "float64", .int32: "int32"][array.dataType] ?? "?"
    return array.withUnsafeBytes { raw, strides in
        var out = [Double](), index = [Int](repeating: 0, count: shape.count)
        out.reserveCapacity(shape.reduce(1, *))
        for _ in 0..<shape.reduce(1, *) {
            out.append(element(raw, zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }, dtype))
            var d = shape.count - 1  // advance the C-order index
            while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
        }
        return out
    }
}
