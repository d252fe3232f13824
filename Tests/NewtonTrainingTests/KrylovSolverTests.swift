import NewtonCore
import NewtonRoles
import NewtonTraining
import XCTest

/// `y = M x` for a fixed dense matrix, applied to server-side vectors: lets
/// the distributed solvers be checked against linear algebra done here.
private struct MatrixOperator: LinearOperator {
    let cluster: ClusterCoordinator
    let matrix: [[Double]]

    func apply(_ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp]) async throws -> [Double] {
        _ = try await cluster.run(prelude)
        let v = try await cluster.read(x)
        var out = v
        for i in matrix.indices { out.values[i] = Float(zip(matrix[i], v.values).reduce(0) { $0 + $1.0 * Double($1.1) }) }
        try await cluster.write(y, out)
        return try await cluster.run(program)
    }
}

/// A space that counts the solver's round trips: its programs and products,
/// and the products that carry a prelude.
private final class CountingSpace<Base: KrylovSpace>: KrylovSpace {
    let base: Base
    private(set) var programs = 0
    private(set) var products = 0
    private(set) var preludes = 0

    init(_ base: Base) { self.base = base }

    nonisolated(nonsending) func run(_ program: [VectorOp]) async throws -> [Double] {
        programs += 1
        return try await base.run(program)
    }

    nonisolated(nonsending) func apply(_ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp])
        async throws -> [Double]
    {
        products += 1
        if !prelude.isEmpty { preludes += 1 }
        return try await base.apply(x, into: y, first: prelude, then: program)
    }

    nonisolated(nonsending) func shouldStop() async throws -> Bool { try await base.shouldStop() }
}

final class KrylovSolverTests: XCTestCase {
    /// A cluster whose parameter vector has 8 entries (a 3-2 network), to hold
    /// vectors for the solvers.
    private func cluster() async throws -> ClusterCoordinator {
        var h = Harness()
        h.layers = [3, 2]
        h.features = 3
        h.classes = 2
        h.partitions = [2, 1]
        h.servers = 2
        let c = try await h.cluster().coordinator
        try await c.start(jobID: "solver", data: h.descriptor, weights: DenseParameters(zeros: try h.network()))
        return c
    }

    /// Symmetric, indefinite (eigenvalues of both signs), well conditioned.
    private let matrix: [[Double]] = {
        let n = 8
        var rng = SeededGenerator(seed: 9)
        let q = (0..<n).map { _ in (0..<n).map { _ in rng.nextGaussian() } }
        var m = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        let eigen: [Double] = [3, -2, 1.5, -1, 2.5, 1, -3, 4]
        // M = Σ_k e_k u_k u_kᵀ with u_k the rows of q orthonormalised.
        var basis = [[Double]]()
        for row in q {
            var u = row
            for b in basis {
                let d = zip(u, b).reduce(0) { $0 + $1.0 * $1.1 }
                for i in 0..<n { u[i] -= d * b[i] }
            }
            let norm = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
            basis.append(u.map { $0 / norm })
        }
        for (e, u) in zip(eigen, basis) { for i in 0..<n { for j in 0..<n { m[i][j] += e * u[i] * u[j] } } }
        return m
    }()

    private func solveExactly(_ b: [Double]) -> [Double] {
        var a = matrix.enumerated().map { $1 + [b[$0]] }
        let n = b.count
        for c in 0..<n {
            let p = (c..<n).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, p)
            for r in 0..<n where r != c {
                let f = a[r][c] / a[c][c]
                for k in c...n { a[r][k] -= f * a[c][k] }
            }
        }
        return (0..<n).map { a[$0][n] / a[$0][$0] }
    }

    func testBiCGSTABSolvesAnIndefiniteSystem() async throws {
        let cluster = try await cluster()
        let b: [Double] = [1, -2, 0.5, 3, -1, 0.25, 2, -0.5]
        var g = try await cluster.read(.weights)
        for i in b.indices { g.values[i] = Float(-b[i]) }  // the solver solves A x = −g
        try await cluster.write(.gradient, g)
        let norm = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let space = ServerVectorSpace(cluster: cluster, operator: MatrixOperator(cluster: cluster, matrix: matrix))
        let report = try await BiCGSTAB(tolerance: 1e-6, maxIterations: 100).solve(in: space, rhs: .gradient, gradientNorm: norm)
        XCTAssertEqual(report.outcome, .converged)
        let x = try await cluster.read(.direction).values
        for (got, want) in zip(x, solveExactly(b)) { XCTAssertEqual(Double(got), want, accuracy: 1e-4) }
    }

    /// Preconditioned CG on a symmetric positive definite system with a
    /// wildly scaled diagonal reaches the exact solution.
    func testPreconditionedCGSolvesAPositiveDefiniteSystem() async throws {
        let cluster = try await cluster()
        let n = 8
        var spd = matrix.map { $0.map(abs) }  // diagonally dominant after the shift below
        for i in 0..<n {
            spd[i][i] = spd[i].reduce(0, +) + Double(1 << (2 * i))
            for j in 0..<n where j != i { spd[j][i] = spd[i][j] }
        }
        let b: [Double] = [1, -2, 0.5, 3, -1, 0.25, 2, -0.5]
        var g = try await cluster.read(.weights)
        var inverseDiagonal = g
        for i in 0..<n {
            g.values[i] = Float(-b[i])
            inverseDiagonal.values[i] = Float(1 / spd[i][i])
        }
        try await cluster.write(.gradient, g)
        try await cluster.write("inverse-diagonal", inverseDiagonal)
        let norm = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let space = ServerVectorSpace(cluster: cluster, operator: MatrixOperator(cluster: cluster, matrix: spd))
        let report = try await ConjugateGradient(tolerance: 1e-7, maxIterations: 50, inversePreconditioner: "inverse-diagonal")
            .solve(in: space, rhs: .gradient, gradientNorm: norm)
        XCTAssertEqual(report.outcome, .converged)
        let x = try await cluster.read(.direction).values
        var a = spd.enumerated().map { $1 + [b[$0]] }
        for c in 0..<n {
            for r in 0..<n where r != c {
                let f = a[r][c] / a[c][c]
                for k in c...n { a[r][k] -= f * a[c][k] }
            }
        }
        for i in 0..<n { XCTAssertEqual(Double(x[i]), a[i][n] / a[i][i], accuracy: 1e-4 * max(1, abs(a[i][n] / a[i][i]))) }
    }

    /// A CG step costs one product, which carries the last step's new
    /// conjugate direction and whose last vector step also computes pᵀAp,
    /// and one program (the iterate and residual with their dots).
    func testConjugateGradientStepIsOneProductAndOneProgram() async throws {
        let cluster = try await cluster()
        var g = try await cluster.read(.weights)
        for i in g.values.indices { g.values[i] = Float(i % 3) - 1 }
        try await cluster.write(.gradient, g)
        let spd = matrix.enumerated().map { i, row in row.enumerated().map { j, m in m + (i == j ? 5 : 0) } }
        let space = CountingSpace(ServerVectorSpace(cluster: cluster, operator: MatrixOperator(cluster: cluster, matrix: spd)))
        let report = try await ConjugateGradient(tolerance: 1e-12, maxIterations: 4).solve(in: space, rhs: .gradient, gradientNorm: 1)
        XCTAssertEqual(report.iterations, 4)
        XCTAssertEqual(space.products, 4)
        XCTAssertEqual(space.preludes, 3)
        // Two programs to start (zero the iterate, the first residual).
        XCTAssertEqual(space.programs, 2 + 4)
    }

    /// A BiCG-STAB step costs two products, the first carrying the new
    /// direction, and two programs (s, then the iterate and residual with
    /// the next step's ρ).
    func testBiCGSTABStepIsTwoProductsAndTwoPrograms() async throws {
        let cluster = try await cluster()
        var g = try await cluster.read(.weights)
        for i in g.values.indices { g.values[i] = Float(i % 3) - 1 }
        try await cluster.write(.gradient, g)
        let space = CountingSpace(ServerVectorSpace(cluster: cluster, operator: MatrixOperator(cluster: cluster, matrix: matrix)))
        let report = try await BiCGSTAB(tolerance: 1e-12, maxIterations: 3).solve(in: space, rhs: .gradient, gradientNorm: 1)
        XCTAssertEqual(report.outcome, .iterationLimit)
        XCTAssertEqual(space.products, 2 * 3)
        XCTAssertEqual(space.preludes, 3)
        XCTAssertEqual(space.programs, 2 + 2 * 3)
    }

    func testConjugateGradientStopsAtNegativeCurvatureAndKeepsIt() async throws {
        let cluster = try await cluster()
        var g = try await cluster.read(.weights)
        for i in g.values.indices { g.values[i] = Float(i % 3) - 1 }
        try await cluster.write(.gradient, g)
        let space = ServerVectorSpace(cluster: cluster, operator: MatrixOperator(cluster: cluster, matrix: matrix))
        let report = try await ConjugateGradient(tolerance: 1e-8, maxIterations: 50, curvature: .stopAtNegative(tolerance: 0))
            .solve(in: space, rhs: .gradient, gradientNorm: 1)
        XCTAssertEqual(report.outcome, .negativeCurvature)
        let p = try await cluster.read(.negativeCurvature).values.map(Double.init)
        let mp = matrix.map { row in zip(row, p).reduce(0) { $0 + $1.0 * $1.1 } }
        let pMp = zip(p, mp).reduce(0) { $0 + $1.0 * $1.1 }
        XCTAssertLessThan(pMp, 0)
        XCTAssertEqual(report.negativeCurvature!, pMp / p.reduce(0) { $0 + $1 * $1 }, accuracy: 1e-4)

        // Without detection on an indefinite operator, CG refuses to go on.
        do {
            _ = try await ConjugateGradient(tolerance: 1e-8, maxIterations: 50).solve(in: space, rhs: .gradient, gradientNorm: 1)
            XCTFail("CG went on through negative curvature")
        } catch let error as TrainingError {
            XCTAssertEqual(error.code, .nonFinite)
        }
    }
}
