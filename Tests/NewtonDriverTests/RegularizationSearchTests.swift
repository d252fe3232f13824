import NewtonCore
import NewtonDriver
import XCTest

final class RegularizationSearchTests: XCTestCase {
    func testAutoIsAJobSettingRefusedForAgents() throws {
        let auto = try JobSpec.parse(yaml: "synthetic: {features: 4, classes: 3}\nC: auto\n")
        XCTAssertTrue(auto.searchesRegularization)
        XCTAssertEqual(auto.regularization, 0.01)
        let fixed = try JobSpec.parse(yaml: "synthetic: {features: 4, classes: 3}\nC: 2\n")
        XCTAssertFalse(fixed.searchesRegularization)
        XCTAssertEqual(fixed.regularization, 2)
        XCTAssertThrowsError(try JobSpec.parse(yaml: "synthetic: {}\nC: auto\noptimizer: next\n")) { error in
            XCTAssertTrue("\(error)".contains("C: auto chooses C for newton, hf, sgd and adam; next needs a number"), "\(error)")
        }
        XCTAssertThrowsError(try JobSpec.parse(yaml: "synthetic: {}\nC: sometimes\n")) { error in
            XCTAssertTrue("\(error)".contains("expected a number or auto, got 'sometimes'"), "\(error)")
        }
    }

    /// Every candidate runs on the same four fifths of the rows and is scored
    /// on the other fifth; the best score wins, and a second search gives
    /// the same trials.
    func testSearchChoosesTheBestHeldOutAccuracy() async throws {
        let spec = try JobSpec.parse(
            yaml: """
                synthetic: {train_rows: 300, test_rows: 50, features: 6, classes: 3, seed: 4}
                layers: [6, 8, 3]
                C: auto
                max_iterations: 5

                """)
        let data = try spec.data.load()
        let search = RegularizationSearch(spec: spec, network: try spec.network(for: data.train), workers: 2)
        var seen = [RegularizationSearch.Trial]()
        let (chosen, trials) = try await search.choose(from: data) { seen.append($0) }
        XCTAssertEqual(trials, seen)
        XCTAssertEqual(trials.map(\.regularization), RegularizationSearch.candidates)
        let accuracies = trials.map { $0.heldOutAccuracy ?? -1 }
        XCTAssertEqual(chosen, trials[accuracies.firstIndex(of: accuracies.max()!)!].regularization)
        for trial in trials {
            // 60 held-out rows: every accuracy is a whole number of them.
            let correct = try XCTUnwrap(trial.heldOutAccuracy) * 60
            XCTAssertEqual(correct, correct.rounded(), accuracy: 1e-9)
            XCTAssertEqual(trial.iterations, 5)
        }
        let again = try await search.choose(from: data)
        XCTAssertEqual(again.trials, trials)
        XCTAssertEqual(again.regularization, chosen)
    }

    func testTooFewRowsToHoldOutAreRefused() async throws {
        let spec = try JobSpec.parse(yaml: "synthetic: {train_rows: 9, test_rows: 5, features: 3, classes: 2}\nC: auto\n")
        let data = try spec.data.load()
        let search = RegularizationSearch(spec: spec, network: try spec.network(for: data.train), workers: 1)
        do {
            _ = try await search.choose(from: data)
            XCTFail("9 rows were searched")
        } catch let error as DriverError {
            XCTAssertEqual(error.code, .invalidJob)
            XCTAssertTrue(error.message.contains("needs at least 10; the data has 9"), error.message)
        }
    }
}
