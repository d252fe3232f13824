#if canImport(Glibc)
    import Glibc
#else
    import Foundation
#endif

/// The element-wise nonlinearity of a layer. Hidden layers use one of
/// `sigmoid`, `tanh`, `relu`; the output layer is always `linear`.
public enum Activation: String, Sendable, CaseIterable, Codable {
    case sigmoid, tanh, relu, linear

    /// Replaces each pre-activation `s` by `σ(s)`.
    @inlinable
    public func apply(_ values: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .linear: return
        case .relu: for i in values.indices { values[i] = max(values[i], 0) }
        case .sigmoid: for i in values.indices { values[i] = 1 / (1 + expf(-values[i])) }
        case .tanh: for i in values.indices { values[i] = tanhf(values[i]) }
        }
    }

    /// Multiplies each `x[i]` by `σ'(s_i)`, with the derivative written in
    /// terms of the layer's output `z = σ(s)`.
    @inlinable
    public func multiplyByDerivative(_ x: UnsafeMutableBufferPointer<Float>, output z: UnsafeBufferPointer<Float>) {
        switch self {
        case .linear: return
        case .relu:
            // Both loads unconditional: a load only on one side of the select
            // keeps the loop scalar.
            for i in x.indices {
                let value = x[i]
                x[i] = z[i] > 0 ? value : 0
            }
        case .sigmoid: for i in x.indices { x[i] *= z[i] * (1 - z[i]) }
        case .tanh: for i in x.indices { x[i] *= 1 - z[i] * z[i] }
        }
    }

    /// Multiplies each `x[i]` by `σ''(s_i)`, written in terms of `z = σ(s)`
    /// (used by the Hessian's R-backward pass).
    @inlinable
    public func multiplyBySecondDerivative(_ x: UnsafeMutableBufferPointer<Float>, output z: UnsafeBufferPointer<Float>) {
        switch self {
        case .linear, .relu: for i in x.indices { x[i] = 0 }
        case .sigmoid: for i in x.indices { x[i] *= z[i] * (1 - z[i]) * (1 - 2 * z[i]) }
        case .tanh: for i in x.indices { x[i] *= -2 * z[i] * (1 - z[i] * z[i]) }
        }
    }
}
