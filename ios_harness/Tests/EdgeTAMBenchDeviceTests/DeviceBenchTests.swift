// Device front end: runs the pack on the device under test and hands back the result JSON.
//
//   xcodebuild test -scheme EdgeTAMBench -destination 'platform=iOS,id=<UDID>'
//
// The pack comes from the test bundle (copy it to Tests/EdgeTAMBenchDeviceTests/Resources/pack
// before building) or from the EDGETAM_PACK environment variable (a path the test process can
// read; `TEST_RUNNER_EDGETAM_PACK=…` on the xcodebuild command line passes it through). Each
// result is written to the test runner's Documents folder, attached to the test (kept in the
// .xcresult) and printed between EDGETAM_BENCH_RESULT_BEGIN/END lines in the log.
// NOT COMPILED HERE (no Swift toolchain where this was written); see ios_harness/README.md.
import EdgeTAMBench
import XCTest

final class DeviceBenchTests: XCTestCase {
    func testRunPack() async throws {
        guard let packURL = Self.packURL() else {
            throw XCTSkip("no pack: copy one to Tests/EdgeTAMBenchDeviceTests/Resources/pack or set EDGETAM_PACK")
        }
        let pack = try Pack(at: packURL)
        let results = try await BenchRunner(pack: pack).runAll()
        let documents = try FileManager.default.url(for: .documentDirectory, in: .userDomainMask,
                                                    appropriateFor: nil, create: true)
        for result in results {
            let url = try result.write(to: documents)
            print(try result.markerBlock())
            let attachment = XCTAttachment(contentsOfFile: url)
            attachment.name = url.lastPathComponent
            attachment.lifetime = .keepAlways
            add(attachment)
            XCTAssertTrue(result.passed, "outputs out of tolerance with compute units \(result.setting.computeUnits ?? "?")")
        }
    }

    static func packURL() -> URL? {
        if let path = ProcessInfo.processInfo.environment["EDGETAM_PACK"] { return URL(fileURLWithPath: path) }
        guard let bundled = Bundle.module.resourceURL?.appendingPathComponent("Resources/pack"),
              FileManager.default.fileExists(atPath: bundled.appendingPathComponent("index.json").path) else { return nil }
        return bundled
    }
}
