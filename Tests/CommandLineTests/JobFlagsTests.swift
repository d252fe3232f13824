import NewtonDriver
import XCTest

@testable import newtonps

/// `train`'s flags and the job-spec keys are one table: every flag in
/// `train --help` is a key and every key a flag, each flag reaches its own
/// key, and `train` with no flags builds the spec an empty YAML file gives.
final class JobFlagsTests: XCTestCase {
    /// Flags of `train` that are not job settings: how this process runs and reports.
    private let processFlags: Set = ["blas-threads", "log-json", "save", "reference-model", "quiet", "help"]

    private var helpFlags: Set<String> {
        let help = TrainCommand.helpMessage(columns: 10_000)
        let names = help.matches(of: /--([A-Za-z0-9-]+)/).map { String($0.1) }
        // `--backtracking/--no-backtracking` is one setting.
        return Set(names.filter { !$0.hasPrefix("no-") || !help.contains("--\($0.dropFirst(3))/--\($0)") })
    }

    func testEveryFlagIsAKeyAndEveryKeyAFlag() {
        let keys = Set(JobSpec.keys)
        let flagKeys = Set(helpFlags.subtracting(processFlags).map { $0.replacingOccurrences(of: "-", with: "_") })
        XCTAssertEqual(flagKeys.subtracting(keys), [], "flags of train with no job-spec key")
        XCTAssertEqual(keys.subtracting(flagKeys), [], "job-spec keys with no train flag")
    }

    func testEachFlagReachesItsKey() throws {
        for key in JobSpec.keys {
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            // A flag takes no value; an option takes any text (JobSpec reads it).
            let command = try (try? TrainCommand.parse([flag])) ?? TrainCommand.parse([flag, "7"])
            let given = command.jobArguments
            XCTAssertEqual(given.map(\.key), [key], "\(flag) set \(given)")
        }
        XCTAssertEqual(try TrainCommand.parse(["--no-backtracking"]).jobArguments.map(\.value), ["false"])
    }

    func testDefaultsAreTheEmptySpecs() throws {
        XCTAssertEqual(try TrainCommand.parse([]).jobSpec(), try JobSpec.parse(yaml: ""))
        let adam = try TrainCommand.parse(["--optimizer", "adam", "--gradient-batch", "full"]).jobSpec()
        XCTAssertEqual(adam, try JobSpec.parse(yaml: "optimizer: adam\ngradient_batch: full\n"))
        XCTAssertEqual(adam.firstOrder.learningRate, 0.001)
    }

    func testLIBLINEARStyleC() throws {
        XCTAssertEqual(try TrainCommand.parse(["-C", "0.5"]).jobSpec().regularization, 0.5)
        XCTAssertEqual(try TrainCommand.parse(["--C", "2"]).jobSpec().regularization, 2)
    }

    func testFlagProblemsNameTheFlag() {
        XCTAssertThrowsError(try TrainCommand.parse(["--cg-tolerance", "3", "--subsample", "x"]).jobSpec()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("--cg-tolerance: CG tolerance must be in (0, 1), got 3.0"), message)
            XCTAssertTrue(message.contains("--subsample: expected a number, got 'x'"), message)
        }
    }
}
