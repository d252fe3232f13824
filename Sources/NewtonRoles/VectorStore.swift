import NewtonCore
import NewtonTraining

#if canImport(Glibc)
    import Glibc
#else
    import Foundation
#endif

/// Named float32 vectors of one size — a block's weights, gradient and
/// solver vectors on a server, or a block-local solve's scratch vectors —
/// and the vector programs that run on them. A vector never written reads as
/// zeros. Every vector has a version that changes with each write, so a
/// reader that holds a copy can tell whether it is still current.
final class VectorStore {
    let size: Int
    /// Names the owner in messages (e.g. "block (1, 0, 1)").
    let label: String
    private var vectors: [VectorName: [Float]] = [:]
    private var versions: [VectorName: UInt64] = [:]
    /// The version of a vector never written.
    private let origin: UInt64
    /// The last version handed out. It starts at a random point, so a
    /// store that replaces another (a new job, a restarted server) does not
    /// repeat the versions a reader may still hold.
    private var clock: UInt64

    init(size: Int, label: String) {
        self.size = size
        self.label = label
        self.origin = UInt64.random(in: 1...(UInt64.max >> 1))
        self.clock = origin
    }

    subscript(name: VectorName) -> [Float]? {
        get { vectors[name] }
        set {
            vectors[name] = newValue
            touch(name)
        }
    }

    /// The current version of `name`.
    func version(of name: VectorName) -> UInt64 { versions[name] ?? origin }

    /// Gives `name` a fresh version.
    private func touch(_ name: VectorName) {
        clock += 1
        versions[name] = clock
    }

    /// The values of `name` (zeros when never written).
    func vector(_ name: VectorName) -> [Float] { vectors[name] ?? [Float](repeating: 0, count: size) }

    /// Removes `name` for an in-place update (zeros when never written), so
    /// writing to it copies nothing.
    private func take(_ name: VectorName) -> [Float] {
        defer { touch(name) }
        return vectors.removeValue(forKey: name) ?? [Float](repeating: 0, count: size)
    }

    /// Runs `program` in order; returns the value of each `dot`.
    func run(_ program: [VectorOp]) throws -> [Double] {
        var dots = [Double]()
        for op in program {
            switch op {
            case .combine(let target, let terms):
                // In place: the target's own terms scale its buffer, the
                // others are added to it (no fresh megabyte per CG step).
                let own = terms.filter { $0.vector == target }.reduce(0.0) { $0 + $1.coefficient }
                var result = take(target)
                result.withUnsafeMutableBufferPointer { out in
                    // Overwrite rather than multiply by 0, so stale NaNs cannot survive.
                    let scale = Float(own)
                    if scale == 0 { out.update(repeating: 0) } else if scale != 1 { for i in out.indices { out[i] *= scale } }
                    for term in terms where term.vector != target {
                        vector(term.vector).withUnsafeBufferPointer { VectorMath.axpy(Float(term.coefficient), $0, out) }
                    }
                }
                self[target] = result
            case .fill(let target, let value):
                self[target] = [Float](repeating: value, count: size)
            case .dot(let a, let b):
                dots.append(VectorMath.dot(vector(a), vector(b)))
            case .adam(let update, let weights, let gradient, let firstMoment, let secondMoment):
                // Read g before taking the others out, so a name used twice still reads its old values.
                let g = vector(gradient)
                var w = take(weights)
                var m = take(firstMoment)
                var v = take(secondMoment)
                w.withUnsafeMutableBufferPointer { w in
                    m.withUnsafeMutableBufferPointer { m in
                        v.withUnsafeMutableBufferPointer { v in
                            g.withUnsafeBufferPointer { g in
                                VectorMath.adam(
                                    weights: w, firstMoment: m, secondMoment: v, gradient: g,
                                    beta1: Float(update.beta1), beta2: Float(update.beta2),
                                    correction1: Float(1 - pow(update.beta1, Double(update.step))),
                                    correction2: Float(1 - pow(update.beta2, Double(update.step))),
                                    learningRate: Float(update.learningRate), epsilon: Float(update.epsilon))
                            }
                        }
                    }
                }
                self[weights] = w
                self[firstMoment] = m
                self[secondMoment] = v
            case .multiply(let target, let a, let b):
                let x = vector(a)
                let y = vector(b)
                self[target] = (0..<size).map { x[$0] * y[$0] }
            case .power(let target, let source, let scale, let shift, let exponent):
                let x = vector(source)
                let values = x.map { Float(pow(scale * Double($0) + shift, exponent)) }
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw RoleError(.numerical, "\(label): (\(scale)·\(x[bad]) + \(shift))^\(exponent) is not finite")
                }
                self[target] = values
            }
        }
        return dots
    }
}
