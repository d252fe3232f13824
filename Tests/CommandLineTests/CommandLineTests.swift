import Foundation
import XCTest

/// End-to-end runs of the `newtonps` binary on files it wrote itself.
final class CommandLineTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("newtonps-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func testTrainsLIBSVMCSVAndNPYEndToEndAndEvaluatesTheSavedModel() throws {
        for format in ["libsvm", "csv", "npy"] {
            try newtonps([
                "synth", "--rows", "1500", "--test-rows", "500", "--features", "10", "--classes", "3", "--seed", "4",
                "--to", format, "--output", path("train.\(format)"), "--test-output", path("test.\(format)"),
            ])
            let log = path("\(format).jsonl")
            let model = path("\(format).safetensors")
            let output = try newtonps([
                "train", "--format", format, "--train", path("train.\(format)"), "--test", path("test.\(format)"),
                "--layers", "10,32,3", "--C", "1", "--subsample", "0.2", "--partitions", "2,2,1",
                "--servers", "2", "--workers", "2", "--max-iterations", "20",
                "--log-json", log, "--save", model,
            ])
            XCTAssertTrue(output.contains("done: 20 iterations"), output)
            let records = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
            XCTAssertEqual(records.count, 21)
            for key in ["iteration", "elapsed_s", "objective", "grad_norm", "cg_iterations", "lambda", "step", "test_accuracy"] {
                XCTAssertNotNil(records.last![key], "\(format): record lacks \(key)")
            }
            let accuracy = try XCTUnwrap(records.last!["test_accuracy"] as? Double)
            XCTAssertGreaterThan(accuracy, 0.85, format)

            let evaluation = try newtonps(["evaluate", "--model", model, "--data", path("test.\(format)"), "--format", format])
            let result = try JSONSerialization.jsonObject(with: Data(evaluation.utf8)) as! [String: Double]
            XCTAssertEqual(result["accuracy"]!, accuracy, accuracy: 1e-9, "\(format): the saved model predicts what training reported")
        }
    }

    func testTrainsOnAGraphOfAgentsWithNextAndDGD() throws {
        try newtonps([
            "synth", "--rows", "1200", "--test-rows", "400", "--features", "10", "--classes", "3", "--seed", "6",
            "--to", "libsvm", "--output", path("train.svm"), "--test-output", path("test.svm"),
        ])
        let data = ["--format", "libsvm", "--train", path("train.svm"), "--test", path("test.svm"), "--layers", "10,16,3", "--C", "1"]
        let output = try newtonps(
            ["train", "--optimizer", "next", "--agents", "4", "--graph", "ring", "--time-varying", "0.5:2", "--surrogate", "gauss-newton"]
                + data + ["--max-iterations", "30", "--log-json", path("next.jsonl"), "--save", path("next.safetensors")])
        XCTAssertTrue(output.contains("next (4 agents, ring, time-varying 0.5:2, gauss-newton surrogate, l2)"), output)
        XCTAssertTrue(output.contains("done: 30 iterations"), output)
        let records = try jsonLines(path("next.jsonl"))
        XCTAssertEqual(records.count, 31)
        for key in ["iteration", "objective", "grad_norm", "disagreement", "test_accuracy", "zero_fraction", "bytes_sent"] {
            XCTAssertNotNil(records.last![key], "the record lacks \(key)")
        }
        let accuracy = try XCTUnwrap(records.last!["test_accuracy"] as? Double)
        XCTAssertGreaterThan(accuracy, 0.9)
        let evaluation = try newtonps(["evaluate", "--model", path("next.safetensors"), "--data", path("test.svm"), "--format", "libsvm"])
        let result = try JSONSerialization.jsonObject(with: Data(evaluation.utf8)) as! [String: Double]
        XCTAssertEqual(result["accuracy"]!, accuracy, accuracy: 1e-9, "the saved model is the average w̄ the last record measured")

        try newtonps(
            ["train", "--optimizer", "dgd", "--agents", "3", "--graph", "star", "--regularizer", "l1", "--l1", "0.01"] + data
                + ["--max-iterations", "10", "--log-json", path("dgd.jsonl"), "--quiet"])
        let zeros = try XCTUnwrap(try jsonLines(path("dgd.jsonl")).last!["zero_fraction"] as? Double)
        XCTAssertGreaterThan(zeros, 0)
        let refused = try newtonps(
            ["train", "--optimizer", "next", "--surrogate", "gauss-newton", "--regularizer", "l1"] + data, expectFailure: true)
        XCTAssertTrue(refused.contains("use the linear surrogate with l1"), refused)
    }

    /// `--C auto` prints every candidate's held-out accuracy, then trains
    /// with the one it chose.
    func testTrainChoosesCOnAHeldOutSplit() throws {
        try newtonps([
            "synth", "--rows", "500", "--test-rows", "100", "--features", "6", "--classes", "3", "--seed", "8",
            "--to", "libsvm", "--output", path("c.svm"), "--test-output", path("c-test.svm"),
        ])
        let output = try newtonps([
            "train", "--format", "libsvm", "--train", path("c.svm"), "--test", path("c-test.svm"), "--layers", "6,8,3", "--C", "auto",
            "--max-iterations", "4",
        ])
        XCTAssertTrue(output.contains("choosing C on a held-out fifth of the 500 training rows (5 runs)"), output)
        for c in ["0.01", "0.1", "1.0", "10.0", "100.0"] {
            XCTAssertTrue(output.contains("  C = \(c): held-out accuracy "), "no trial of C = \(c) in:\n\(output)")
        }
        XCTAssertTrue(output.contains(" chosen\n"), output)
        XCTAssertTrue(output.contains("done: 4 iterations"), output)
    }

    private func jsonLines(_ file: String) throws -> [[String: Any]] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func testDataIndexStoresTheIndexBesideTheFileAndNamesBadInput() throws {
        try newtonps(["synth", "--rows", "3000", "--features", "5", "--classes", "2", "--format", "csv", "--out", path("d.csv")])
        let output = try newtonps(["data", "index", path("d.csv"), "--format", "csv", "--block-rows", "1000"])
        let result = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [String: Any]
        XCTAssertEqual(result["rows"] as? Int, 3000)
        XCTAssertEqual(result["columns"] as? Int, 5)
        XCTAssertEqual(result["classes"] as? Int, 2)
        XCTAssertEqual(result["blocks"] as? Int, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("d.csv.npsidx")))
        let missing = try newtonps(["data", "index", path("missing.svm")], expectFailure: true)
        XCTAssertTrue(missing.contains("missing.svm does not exist"), missing)
        try "1 1:0.5\n2 1:x\n".write(toFile: path("bad.svm"), atomically: true, encoding: .utf8)
        let bad = try newtonps(["data", "index", path("bad.svm")], expectFailure: true)
        XCTAssertTrue(bad.contains("bad.svm:2:"), bad)
    }

    func testCertsWritesATokenAndCanDiscardTheCAKey() throws {
        let out = path("certs")
        let said = try newtonps(["certs", "--out", out, "--hosts", "driver,server-1", "--token", "--discard-ca-key"])
        XCTAssertTrue(said.contains("its key deleted") && said.contains("a cluster token"), said)
        let files = try FileManager.default.contentsOfDirectory(atPath: out)
        XCTAssertFalse(files.contains("ca-key.pem"), "\(files)")
        XCTAssertTrue(files.contains("ca.pem") && files.contains("driver-key.pem"), "\(files)")
        let token = try String(contentsOfFile: "\(out)/token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(token.count, 64, token)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: "\(out)/token")[.posixPermissions] as? Int, 0o600)
    }

    func testMalformedDataIsReportedWithFileAndLine() throws {
        try "1 1:0.5 2:0.25\n2 1:0.1 2:oops\n".write(toFile: path("bad.libsvm"), atomically: true, encoding: .utf8)
        let failure = try newtonps(["train", "--format", "libsvm", "--train", path("bad.libsvm")], expectFailure: true)
        XCTAssertTrue(failure.contains("bad.libsvm"), failure)
        XCTAssertTrue(failure.contains("bad.libsvm:2:"), failure)
    }

    func testImpossibleOptionsAreRejectedBeforeTraining() throws {
        try newtonps(["synth", "--rows", "100", "--features", "4", "--classes", "2", "--to", "csv", "--output", path("d.csv")])
        let grid = try newtonps(
            ["train", "--format", "csv", "--train", path("d.csv"), "--layers", "4,8,2", "--partitions", "2,9,1"], expectFailure: true)
        XCTAssertTrue(grid.contains("8 neurons"), grid)
        let layers = try newtonps(["train", "--format", "csv", "--train", path("d.csv"), "--layers", "5,8,2"], expectFailure: true)
        XCTAssertTrue(layers.contains("4 features"), layers)
        let knobs = try newtonps(
            ["train", "--format", "csv", "--train", path("d.csv"), "--layers", "4,8,2", "--cg-tolerance", "3", "--subsample", "0"],
            expectFailure: true)
        XCTAssertTrue(knobs.contains("CG tolerance") && knobs.contains("subsample"), knobs)
    }

    /// Runs the binary built next to this test bundle; returns stdout, or
    /// stderr when `expectFailure` (which then requires a non-zero exit).
    @discardableResult
    private func newtonps(_ arguments: [String], expectFailure: Bool = false) throws -> String {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: expectFailure ? stderr : stdout, as: UTF8.self)
        if expectFailure {
            XCTAssertNotEqual(process.terminationStatus, 0, "newtonps \(arguments.joined(separator: " ")) should have failed")
        } else if process.terminationStatus != 0 {
            throw CommandFailure(
                description:
                    "newtonps \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: stderr, as: UTF8.self))"
            )
        }
        return text
    }

    private static let binary: URL = {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("newtonps")
    }()
}

struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}
