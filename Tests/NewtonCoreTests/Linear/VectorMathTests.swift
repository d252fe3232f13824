import NewtonCore
import XCTest

final class VectorMathTests: XCTestCase {
    /// The dot's four lanes add plain products, which equal fused
    /// multiply-adds bit for bit because a product of floats is exact in
    /// double: checked against lanes that fuse, on floats from subnormal to
    /// huge, signed zeros, infinities and NaN, through the tail.
    func testDotRoundsAsFusedMultiplyAddLanes() {
        for n in [0, 3, 4, 5, 8, 1001] {
            var rng = SeededGenerator(seed: UInt64(n), stream: 4)
            func draw() -> [Float] {
                (0..<n).map { i in
                    switch i % 9 {
                    case 0: return Float(rng.nextGaussian()) * Float.leastNormalMagnitude / 8  // subnormal
                    case 1: return Float(rng.nextGaussian()) * 1e30
                    case 2: return i % 2 == 0 ? 0 : -0.0
                    default: return Float(rng.nextGaussian()) * Float(1 << (i % 24))
                    }
                }
            }
            let (x, y) = (draw(), draw())
            var fused = SIMD4<Double>()
            var i = 0
            while i + 4 <= n {
                for k in 0..<4 { fused[k] = fused[k].addingProduct(Double(x[i + k]), Double(y[i + k])) }
                i += 4
            }
            var expected = fused.sum()
            while i < n {
                expected += Double(x[i]) * Double(y[i])
                i += 1
            }
            XCTAssertEqual(VectorMath.dot(x, y).bitPattern, expected.bitPattern, "length \(n)")
        }
        let special: [Float] = [.infinity, 1, .nan, -0.0, 2, 3, 4, 5]
        XCTAssertTrue(VectorMath.dot(special, [1, 1, 1, 1, 1, 1, 1, 1]).isNaN)
        XCTAssertEqual(VectorMath.dot([.infinity, 1, 1, 1], [1, 1, 1, 1]), .infinity)
    }

    /// The eight-lane Adam kernel against the textbook scalar loop, bit for
    /// bit, on lengths that exercise the lanes, the tail and both together.
    func testAdamMatchesTheScalarUpdateBitForBit() {
        let beta1: Float = 0.9
        let beta2: Float = 0.999
        let correction1: Float = 1 - 0.9 * 0.9 * 0.9
        let correction2: Float = 1 - 0.999 * 0.999 * 0.999
        let rate: Float = 0.001
        let epsilon: Float = 1e-8
        for n in [0, 1, 7, 8, 9, 64, 1003] {
            var rng = SeededGenerator(seed: UInt64(n), stream: 3)
            func draw() -> [Float] { (0..<n).map { _ in Float(rng.nextGaussian()) } }
            let g = draw()
            let w0 = draw()
            let m0 = draw()
            // A second moment is never negative; include exact zeros.
            let v0 = draw().enumerated().map { $0 % 5 == 0 ? 0 : $1 * $1 }
            var (w, m, v) = (w0, m0, v0)
            w.withUnsafeMutableBufferPointer { w in
                m.withUnsafeMutableBufferPointer { m in
                    v.withUnsafeMutableBufferPointer { v in
                        g.withUnsafeBufferPointer { g in
                            VectorMath.adam(
                                weights: w, firstMoment: m, secondMoment: v, gradient: g, beta1: beta1, beta2: beta2,
                                correction1: correction1, correction2: correction2, learningRate: rate, epsilon: epsilon)
                        }
                    }
                }
            }
            var (ws, ms, vs) = (w0, m0, v0)
            for i in 0..<n {
                ms[i] = beta1 * ms[i] + (1 - beta1) * g[i]
                vs[i] = beta2 * vs[i] + (1 - beta2) * g[i] * g[i]
                ws[i] -= rate * (ms[i] / correction1) / ((vs[i] / correction2).squareRoot() + epsilon)
            }
            XCTAssertEqual(m.map(\.bitPattern), ms.map(\.bitPattern), "first moment, length \(n)")
            XCTAssertEqual(v.map(\.bitPattern), vs.map(\.bitPattern), "second moment, length \(n)")
            XCTAssertEqual(w.map(\.bitPattern), ws.map(\.bitPattern), "weights, length \(n)")
        }
    }
}
