import CBLAS

/// Thin, typed access to the OpenBLAS routines newtonps uses. All matrices are
/// row-major float32.
public enum BLAS {
    /// `C = alpha · op(A) · op(B) + beta · C` where `op(A)` is `m × k` and
    /// `op(B)` is `k × n`; leading dimensions are the row lengths of the
    /// matrices as stored.
    @inlinable
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int,
        _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb),
            beta, c, Int32(ldc))
    }

    /// `y = A x` for a row-major `m × n` matrix `A` (one thread's worth of work;
    /// used for the per-sample contractions of the Jacobian products).
    @inlinable
    public static func gemv(m: Int, n: Int, _ a: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), 1, a, Int32(n), x, 1, 0, y, 1)
    }

    /// The OpenBLAS kernel family in use ("Haswell", "Cooperlake", …): the
    /// CPU's, unless `OPENBLAS_CORETYPE` names another. Kernel families
    /// round differently, so results are identical as doubles only between
    /// processes that run the same one.
    public static var kernel: String { String(cString: openblas_get_corename()) }

    /// The number of threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}

/// Small vector kernels on raw buffers. Dot products accumulate in `Double`
/// in a fixed order, so a sum does not depend on thread counts or on how the
/// vector is cut into blocks beyond rounding of the final additions.
public enum VectorMath {
    /// `Σ x_i y_i` in double precision, always in the same order (BLAS's
    /// `dsdot` splits long sums over threads, so its rounding depends on the
    /// thread count).
    @inlinable
    public static func dot(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>) -> Double {
        precondition(x.count == y.count, "dot of vectors of length \(x.count) and \(y.count)")
        var lanes = SIMD4<Double>()
        var i = 0
        let n = x.count
        while i + 4 <= n {
            let a = SIMD4<Double>(Double(x[i]), Double(x[i + 1]), Double(x[i + 2]), Double(x[i + 3]))
            let b = SIMD4<Double>(Double(y[i]), Double(y[i + 1]), Double(y[i + 2]), Double(y[i + 3]))
            // A product of two floats is exact in double, so `+= a * b`
            // rounds as a fused multiply-add would; `addProduct` is a call
            // to libm's `fma` per lane on this baseline x86-64 target.
            lanes += a * b
            i += 4
        }
        var total = lanes.sum()
        while i < n {
            total += Double(x[i]) * Double(y[i])
            i += 1
        }
        return total
    }

    @inlinable
    public static func dot(_ x: [Float], _ y: [Float]) -> Double {
        x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in dot(xp, yp) } }
    }

    /// `y += a · x`.
    @inlinable
    public static func axpy(_ a: Float, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>) {
        precondition(x.count == y.count, "axpy of vectors of length \(x.count) and \(y.count)")
        for i in 0..<x.count { y[i] += a * x[i] }
    }

    /// Adam's update of one vector, with `c₁`, `c₂` the bias corrections:
    /// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
    /// `w ← w − η(m/c₁)/(√(v/c₂) + ε)`. Eight lanes at a time, with the
    /// vector square root from the C shim (`squareRoot()` keeps loops
    /// scalar); each lane rounds exactly as the scalar expression does.
    @inlinable
    public static func adam(
        weights w: UnsafeMutableBufferPointer<Float>, firstMoment m: UnsafeMutableBufferPointer<Float>,
        secondMoment v: UnsafeMutableBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
        beta1: Float, beta2: Float, correction1: Float, correction2: Float, learningRate: Float, epsilon: Float
    ) {
        let n = w.count
        precondition(m.count == n && v.count == n && g.count == n, "Adam on vectors of lengths \(n), \(m.count), \(v.count), \(g.count)")
        guard n > 0, let wp = w.baseAddress, let mp = m.baseAddress, let vp = v.baseAddress, let gp = g.baseAddress else { return }
        typealias Lanes = SIMD8<Float>
        var i = 0
        while i + Lanes.scalarCount <= n {
            let gi = UnsafeRawPointer(gp + i).loadUnaligned(as: Lanes.self)
            let mi = beta1 * UnsafeRawPointer(mp + i).loadUnaligned(as: Lanes.self) + (1 - beta1) * gi
            let vi = beta2 * UnsafeRawPointer(vp + i).loadUnaligned(as: Lanes.self) + (1 - beta2) * gi * gi
            let wi =
                UnsafeRawPointer(wp + i).loadUnaligned(as: Lanes.self) - learningRate * (mi / correction1)
                / (newtonps_sqrt8(vi / correction2) + epsilon)
            UnsafeMutableRawPointer(mp + i).storeBytes(of: mi, as: Lanes.self)
            UnsafeMutableRawPointer(vp + i).storeBytes(of: vi, as: Lanes.self)
            UnsafeMutableRawPointer(wp + i).storeBytes(of: wi, as: Lanes.self)
            i += Lanes.scalarCount
        }
        while i < n {
            mp[i] = beta1 * mp[i] + (1 - beta1) * gp[i]
            vp[i] = beta2 * vp[i] + (1 - beta2) * gp[i] * gp[i]
            wp[i] -= learningRate * (mp[i] / correction1) / ((vp[i] / correction2).squareRoot() + epsilon)
            i += 1
        }
    }
}
