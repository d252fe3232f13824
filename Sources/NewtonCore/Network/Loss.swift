#if canImport(Glibc)
    import Glibc
#else
    import Foundation
#endif

/// The per-sample loss ξ(z, y) on the network's output z (length n_L) and a
/// class label y, with its gradient and its curvature `B = ∂²ξ/∂z²`.
public enum Loss: String, Sendable, CaseIterable, Codable {
    /// ‖z − onehot(y)‖², the authors' default; `B = 2I`.
    case squared
    /// −log softmax(z)_y; `B = diag(p) − ppᵀ` with `p = softmax(z)`.
    case crossEntropy = "cross-entropy"

    /// Σ over rows of ξ(z_r, y_r), accumulated in double precision.
    public func value(outputs: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int32>, classes: Int) -> Double {
        var total = 0.0
        for r in 0..<labels.count {
            let z = UnsafeBufferPointer(rebasing: outputs[(r * classes)..<((r + 1) * classes)])
            let y = Int(labels[r])
            switch self {
            case .squared:
                for k in 0..<classes {
                    let d = Double(z[k]) - (k == y ? 1 : 0)
                    total += d * d
                }
            case .crossEntropy:
                let m = z.max() ?? 0
                var sum = 0.0
                for k in 0..<classes { sum += exp(Double(z[k] - m)) }
                total += log(sum) + Double(m) - Double(z[y])
            }
        }
        return total
    }

    /// Writes ∂ξ/∂z for every row into `gradient` (same shape as `outputs`).
    public func gradient(
        outputs: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int32>, classes: Int,
        into gradient: UnsafeMutableBufferPointer<Float>
    ) {
        for r in 0..<labels.count {
            let base = r * classes
            let y = Int(labels[r])
            switch self {
            case .squared:
                for k in 0..<classes { gradient[base + k] = 2 * (outputs[base + k] - (k == y ? 1 : 0)) }
            case .crossEntropy:
                softmax(outputs, row: r, classes: classes, into: gradient)
                gradient[base + y] -= 1
            }
        }
    }

    /// Writes `B_r u_r` for every row r: the loss curvature at `outputs`
    /// applied to `u` (both `rows × classes`).
    public func curvatureProduct(
        outputs: UnsafeBufferPointer<Float>, _ u: UnsafeBufferPointer<Float>, classes: Int, into result: UnsafeMutableBufferPointer<Float>
    ) {
        let rows = u.count / classes
        switch self {
        case .squared:
            for i in 0..<u.count { result[i] = 2 * u[i] }
        case .crossEntropy:
            for r in 0..<rows {
                let base = r * classes
                softmax(outputs, row: r, classes: classes, into: result)
                var pu: Float = 0
                for k in 0..<classes { pu += result[base + k] * u[base + k] }
                for k in 0..<classes { result[base + k] *= u[base + k] - pu }
            }
        }
    }

    /// The number of rows whose largest output is at the label.
    public func correctCount(outputs: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int32>, classes: Int) -> Int {
        var correct = 0
        for r in 0..<labels.count {
            var best = 0
            for k in 1..<classes where outputs[r * classes + k] > outputs[r * classes + best] { best = k }
            if best == Int(labels[r]) { correct += 1 }
        }
        return correct
    }

    private func softmax(_ z: UnsafeBufferPointer<Float>, row r: Int, classes: Int, into p: UnsafeMutableBufferPointer<Float>) {
        let base = r * classes
        var m = z[base]
        for k in 1..<classes { m = max(m, z[base + k]) }
        var sum: Float = 0
        for k in 0..<classes {
            let e = expf(z[base + k] - m)
            p[base + k] = e
            sum += e
        }
        for k in 0..<classes { p[base + k] /= sum }
    }
}
