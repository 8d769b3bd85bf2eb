// swift-tools-version:5.9
// EdgeTAMBench: runs an edgetam-export Core ML bench pack on an iPhone, iPad or Mac and writes
// the result JSON of benchmarks/schema/result.v1.schema.json.
//
// NOT COMPILED: this package was written on a machine without a Swift toolchain or Apple OS.
// The Python checks in tests/ios_harness/ verify what can be verified there (no hard-coded
// names/shapes, result keys exist in the schema); the first real build is on a Mac.
import PackageDescription

let package = Package(
    name: "EdgeTAMBench",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "EdgeTAMBench", targets: ["EdgeTAMBench"]),
        .executable(name: "edgetam-bench", targets: ["edgetam-bench"]),
    ],
    targets: [
        // The runner: pack reading, Core ML compile/load/predict, timing, numerics, placement.
        .target(name: "EdgeTAMBench"),
        // macOS front end: `swift run edgetam-bench --pack PACK --out DIR`.
        .executableTarget(name: "edgetam-bench", dependencies: ["EdgeTAMBench"]),
        // Device front end: `xcodebuild test -destination 'platform=iOS,id=…'`. A pack copied to
        // Tests/EdgeTAMBenchDeviceTests/Resources/pack ships inside the test bundle.
        .testTarget(
            name: "EdgeTAMBenchDeviceTests",
            dependencies: ["EdgeTAMBench"],
            resources: [.copy("Resources")]
        ),
    ]
)
