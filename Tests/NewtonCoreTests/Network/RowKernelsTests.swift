import NewtonCore
import XCTest

final class RowKernelsTests: XCTestCase {
    /// Every coordinate of the gradient against a central difference.
    func testGradientMatchesCentralDifferences() throws {
        for (activation, loss) in [(Activation.tanh, Loss.crossEntropy), (.sigmoid, .squared), (.relu, .crossEntropy)] {
            let f = try KernelFixture(activation: activation, loss: loss)
            let k = f.kernels
            let gradient = k.lossAndGradient(k.forward(inputs: f.inputs, rows: f.rows), labels: f.labels).gradient
            let h: Float = 1e-2
            var worst = 0.0
            for i in 0..<f.parameters.count {
                var e = DenseParameters(zeros: f.spec)
                e.values[i] = 1
                let fd = (f.loss(along: e, step: h) - f.loss(along: e, step: -h)) / Double(2 * h)
                worst = max(worst, abs(fd - Double(gradient.values[i])) / max(1, abs(fd)))
            }
            XCTAssertLessThan(worst, 2e-3, "\(activation)/\(loss): gradient differs from finite differences")
        }
    }

    /// `Jv` against the central difference of the outputs along `v`.
    func testJacobianProductMatchesCentralDifferences() throws {
        let f = try KernelFixture(activation: .sigmoid)
        let v = f.randomDirection(seed: 3)
        let jv = f.kernels.jacobianProduct(f.kernels.forward(inputs: f.inputs, rows: f.rows), direction: v).product
        let h: Float = 1e-2
        let plus = f.outputs(along: v, step: h)
        let minus = f.outputs(along: v, step: -h)
        let fd = zip(plus, minus).map { ($0 - $1) / (2 * h) }
        XCTAssertLessThan(maxRelativeDifference(fd, jv), 2e-3)
    }

    /// ⟨Jv, u⟩ = ⟨v, Jᵀu⟩.
    func testTransposeIsAdjointOfJacobianProduct() throws {
        for activation in [Activation.tanh, .relu, .sigmoid] {
            let f = try KernelFixture(activation: activation)
            let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
            let v = f.randomDirection(seed: 11)
            let u = f.randomOutputs(seed: 12)
            let jv = f.kernels.jacobianProduct(pass, direction: v).product
            let jtu = f.kernels.backward(pass, outputGradient: u)
            XCTAssertLessThan(relativeError(dot(jv, u), dot(v.values, jtu.values)), 1e-5, "\(activation)")
        }
    }

    /// G is symmetric, ⟨Gv, w⟩ = ⟨v, Gw⟩, and positive semi-definite.
    func testGaussNewtonIsSymmetricPositiveSemidefinite() throws {
        for loss in Loss.allCases {
            let f = try KernelFixture(loss: loss)
            let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
            let v = f.randomDirection(seed: 21)
            let w = f.randomDirection(seed: 22)
            let gv = f.kernels.gaussNewtonProduct(pass, direction: v)
            let gw = f.kernels.gaussNewtonProduct(pass, direction: w)
            XCTAssertLessThan(relativeError(dot(gv.values, w.values), dot(v.values, gw.values)), 1e-5, "\(loss)")
            for seed in 30..<40 as Range<UInt64> {
                let x = f.randomDirection(seed: seed)
                XCTAssertGreaterThanOrEqual(dot(x.values, f.kernels.gaussNewtonProduct(pass, direction: x).values), -1e-6)
            }
        }
    }

    /// The loss curvature B against finite differences of the loss gradient.
    func testLossCurvatureMatchesDifferencesOfGradient() throws {
        for loss in Loss.allCases {
            let classes = 5
            let rows = 3
            var rng = SeededGenerator(seed: 5)
            let z = (0..<(rows * classes)).map { _ in Float(rng.nextGaussian()) }
            let u = (0..<(rows * classes)).map { _ in Float(rng.nextGaussian()) }
            let labels: [Int32] = [0, 3, 4]
            let h: Float = 1e-2
            func gradient(_ x: [Float]) -> [Float] {
                var g = [Float](repeating: 0, count: x.count)
                x.withUnsafeBufferPointer { xp in
                    labels.withUnsafeBufferPointer { y in
                        g.withUnsafeMutableBufferPointer { gp in
                            loss.gradient(outputs: xp, labels: y, classes: classes, into: gp)
                        }
                    }
                }
                return g
            }
            let plus = gradient(zip(z, u).map { $0 + h * $1 })
            let minus = gradient(zip(z, u).map { $0 - h * $1 })
            let fd = zip(plus, minus).map { ($0 - $1) / (2 * h) }
            var bu = [Float](repeating: 0, count: u.count)
            z.withUnsafeBufferPointer { zp in
                u.withUnsafeBufferPointer { up in
                    bu.withUnsafeMutableBufferPointer { b in
                        loss.curvatureProduct(outputs: zp, up, classes: classes, into: b)
                    }
                }
            }
            XCTAssertLessThan(maxRelativeDifference(fd, bu), 1e-3, "\(loss)")
        }
    }

    /// Summing the per-row work over two halves gives the whole-batch result.
    func testSumsOverRowsSplitCleanly() throws {
        let f = try KernelFixture(rows: 10)
        let whole = f.kernels.lossAndGradient(f.kernels.forward(inputs: f.inputs, rows: 10), labels: f.labels)
        let n0 = f.spec.inputs
        let a = f.kernels.lossAndGradient(f.kernels.forward(inputs: Array(f.inputs[0..<(4 * n0)]), rows: 4), labels: Array(f.labels[0..<4]))
        let b = f.kernels.lossAndGradient(f.kernels.forward(inputs: Array(f.inputs[(4 * n0)...]), rows: 6), labels: Array(f.labels[4...]))
        XCTAssertEqual(whole.loss, a.loss + b.loss, accuracy: 1e-9 * abs(whole.loss))
        XCTAssertLessThan(maxRelativeDifference(whole.gradient.values, zip(a.gradient.values, b.gradient.values).map(+)), 1e-5)
    }
}

final class HessianProductTests: XCTestCase {
    /// Hv against the central difference of the gradient along v.
    func testHessianProductMatchesDifferencesOfTheGradient() throws {
        for (activation, loss) in [(Activation.tanh, Loss.crossEntropy), (.sigmoid, .squared), (.relu, .crossEntropy)] {
            let f = try KernelFixture(activation: activation, loss: loss)
            let v = f.randomDirection(seed: 41)
            let hv = f.kernels.hessianProduct(f.kernels.forward(inputs: f.inputs, rows: f.rows), labels: f.labels, direction: v)
            let h: Float = 1e-2
            func gradient(_ step: Float) -> [Float] {
                var shifted = f.parameters
                for i in shifted.values.indices { shifted.values[i] += step * v.values[i] }
                let k = RowKernels(parameters: shifted)
                return k.lossAndGradient(k.forward(inputs: f.inputs, rows: f.rows), labels: f.labels).gradient.values
            }
            let fd = zip(gradient(h), gradient(-h)).map { ($0 - $1) / (2 * h) }
            XCTAssertLessThan(maxRelativeDifference(fd, hv.values), 5e-3, "\(activation)/\(loss)")
        }
    }

    /// H is symmetric, and (unlike G) indefinite at a generic point.
    func testHessianIsSymmetricAndCanBeIndefinite() throws {
        let f = try KernelFixture(activation: .tanh, loss: .crossEntropy)
        let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
        let v = f.randomDirection(seed: 51)
        let w = f.randomDirection(seed: 52)
        let hv = f.kernels.hessianProduct(pass, labels: f.labels, direction: v)
        let hw = f.kernels.hessianProduct(pass, labels: f.labels, direction: w)
        XCTAssertLessThan(relativeError(dot(hv.values, w.values), dot(v.values, hw.values)), 1e-4)
        let curvatures = (60..<100 as Range<UInt64>).map { seed -> Double in
            let x = f.randomDirection(seed: seed)
            return dot(x.values, f.kernels.hessianProduct(pass, labels: f.labels, direction: x).values)
        }
        XCTAssertTrue(curvatures.contains { $0 < 0 }, "no direction of negative curvature among \(curvatures.count)")
    }

    /// H = G + (the second-order terms); for a linear model (no hidden layer)
    /// the terms vanish and H equals the Gauss-Newton matrix.
    func testHessianEqualsGaussNewtonForALinearModel() throws {
        let f = try KernelFixture(layers: [5, 4], activation: .tanh, loss: .crossEntropy)
        let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
        let v = f.randomDirection(seed: 7)
        XCTAssertLessThan(
            maxRelativeDifference(
                f.kernels.gaussNewtonProduct(pass, direction: v).values,
                f.kernels.hessianProduct(pass, labels: f.labels, direction: v).values), 1e-5)
    }
}

final class SquaredGradientTests: XCTestCase {
    /// Σ_r (∇ξ_r)² from one pass equals the sum of each row's own gradient, squared.
    func testSquaredGradientSumMatchesRowByRowGradients() throws {
        let f = try KernelFixture(activation: .tanh, loss: .crossEntropy)
        let sum = f.kernels.squaredGradientSum(f.kernels.forward(inputs: f.inputs, rows: f.rows), labels: f.labels)
        var reference = [Float](repeating: 0, count: f.parameters.count)
        let n0 = f.spec.inputs
        for r in 0..<f.rows {
            let row = f.kernels.lossAndGradient(
                f.kernels.forward(inputs: Array(f.inputs[(r * n0)..<((r + 1) * n0)]), rows: 1),
                labels: [f.labels[r]]
            ).gradient
            for i in reference.indices { reference[i] += row.values[i] * row.values[i] }
        }
        XCTAssertLessThan(maxRelativeDifference(reference, sum.values), 1e-5)
    }
}
