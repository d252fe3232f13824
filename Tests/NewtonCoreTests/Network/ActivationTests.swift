import NewtonCore
import XCTest

final class ActivationTests: XCTestCase {
    /// ReLU's derivative keeps `x` where the output is positive and zeroes
    /// it elsewhere, NaN outputs included.
    func testReLUDerivativeMasksByTheOutput() {
        var x: [Float] = [1, -2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        let z: [Float] = [0.5, 2, 0, -1, .nan, 3, 1e-30, -0.0, 7, .infinity, -.infinity]
        x.withUnsafeMutableBufferPointer { x in z.withUnsafeBufferPointer { Activation.relu.multiplyByDerivative(x, output: $0) } }
        XCTAssertEqual(x, [1, -2, 0, 0, 0, 6, 7, 0, 9, 10, 0])
    }
}
