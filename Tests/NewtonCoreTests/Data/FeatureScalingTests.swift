import XCTest

@testable import NewtonCore

final class FeatureScalingTests: XCTestCase {
    /// Columns: 0…4 rising, constant 7, and -2, 2 alternating.
    private let training = Dataset(
        validated: [0, 7, -2, 1, 7, 2, 2, 7, -2, 3, 7, 2, 4, 7, -2, 4, 7, 2],
        labels: [0, 1, 0, 1, 0, 1], columns: 3, classNames: ["a", "b"])
    private let test = Dataset(validated: [8, 5, 0, -4, 7, 6], labels: [0, 1], columns: 3, classNames: ["a", "b"])

    func testRawValues() {
        XCTAssertEqual(FeatureScaling.allCases.map(\.rawValue), ["none", "unit", "standard"])
    }

    func testUnitRangeFittedOnTrainingAppliesToTest() throws {
        let scaler = try FeatureScaler.fit(.unitRange, on: training)
        var scaled = training
        try scaler.apply(to: &scaled)
        XCTAssertEqual(scaled.features, [0, 0, 0, 0.25, 0, 1, 0.5, 0, 0, 0.75, 0, 1, 1, 0, 0, 1, 0, 1])
        var scaledTest = test
        try scaler.apply(to: &scaledTest)
        XCTAssertEqual(scaledTest.features, [2, 0, 0.5, -1, 0, 2])
    }

    func testStandardize() throws {
        let scaler = try FeatureScaler.fit(.standardize, on: training)
        var scaled = training
        try scaler.apply(to: &scaled)
        for column in [0, 2] {
            let values = stride(from: column, to: scaled.features.count, by: 3).map { Double(scaled.features[$0]) }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            XCTAssertEqual(mean, 0, accuracy: 1e-6)
            XCTAssertEqual(variance, 1, accuracy: 1e-5)
        }
        XCTAssertEqual(stride(from: 1, to: scaled.features.count, by: 3).map { scaled.features[$0] }, Array(repeating: 0, count: 6))
        var scaledTest = test
        try scaler.apply(to: &scaledTest)
        // Column 2 has mean 0 and standard deviation 2 in training; column 1 is constant.
        XCTAssertEqual(scaledTest.features[2], 0)
        XCTAssertEqual(scaledTest.features[5], 3, accuracy: 1e-6)
        XCTAssertEqual(scaledTest.features[4], 0)
    }

    func testNoneLeavesDataAlone() throws {
        var copy = training
        try FeatureScaler.fit(.none, on: training).apply(to: &copy)
        XCTAssertEqual(copy.features, training.features)
    }

    func testErrors() throws {
        let scaler = try FeatureScaler.fit(.unitRange, on: training)
        var narrow = try Dataset(features: [1, 2], labels: [0], columns: 2, classNames: ["a"])
        XCTAssertThrowsError(try scaler.apply(to: &narrow)) { XCTAssertEqual(($0 as? CoreError)?.code, .shapeMismatch) }
        let empty = try Dataset(features: [], labels: [], columns: 2, classNames: ["a"])
        XCTAssertThrowsError(try FeatureScaler.fit(.standardize, on: empty)) { XCTAssertEqual(($0 as? CoreError)?.code, .invalidArgument) }
    }
}
