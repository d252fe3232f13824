import Foundation
import NewtonTraining
import Synchronization

/// Shows each iteration as it finishes: a live, rewritten line on a
/// terminal (with the time left if the run took its whole budget), one plain
/// line per iteration otherwise, and optionally one JSON record per line in
/// a log file.
final class ProgressReporter: Sendable {
    private struct State {
        var log: FileHandle?
        var lastLineLength = 0
    }

    private let state: Mutex<State>
    private let live: Bool
    private let quiet: Bool
    private let maxIterations: Int?

    /// - Parameter maxIterations: the run's iteration budget, for the time left.
    init(jsonLog path: String?, quiet: Bool, maxIterations: Int?) throws {
        var log: FileHandle?
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw ValidationErrorText("cannot create the JSON log \(path)")
            }
            log = FileHandle(forWritingAtPath: path)
        }
        self.state = Mutex(State(log: log))
        self.live = isatty(STDOUT_FILENO) == 1
        self.quiet = quiet
        self.maxIterations = maxIterations
    }

    func record(_ r: IterationRecord) {
        let line = Self.format(r)
        let json = Self.json(r)
        state.withLock { s in
            if let json { s.log?.write(json) }
            guard !quiet else { return }
            if live {
                let shown = line + Self.timeLeft(r, maxIterations: maxIterations)
                let padding = String(repeating: " ", count: max(0, s.lastLineLength - shown.count))
                FileHandle.standardOutput.write(Data(("\r" + shown + padding).utf8))
                s.lastLineLength = shown.count
            } else {
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
        }
    }

    /// Ends the live line so later output starts on a fresh one.
    func finish() {
        state.withLock { s in
            if live && s.lastLineLength > 0 && !quiet { print("") }
            try? s.log?.close()
        }
    }

    static func format(_ r: IterationRecord) -> String {
        let accuracy = r.testAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "-"
        if let disagreement = r.disagreement {
            return String(
                format: "round %4d  %7.1fs  U %.6e  |g| %.3e  disagreement %.3e  cg %3d  α %.4g  zeros %.3f  test %@", r.iteration,
                r.elapsedSeconds, r.objective, r.gradientNorm, disagreement, r.cgIterations, r.step, r.zeroFraction ?? 0, accuracy)
        }
        return String(
            format: "iter %3d  %7.1fs  f %.6e  |g| %.3e  cg %3d  λ %.3g  α %.4g  test %@", r.iteration, r.elapsedSeconds,
            r.objective, r.gradientNorm, r.cgIterations, r.lambda, r.step, accuracy)
            + (r.outcome == .lineSearchFailed ? "  (line search failed)" : "")
    }

    /// "  ETA 42s" at the pace so far, if the budget is known and not yet spent.
    static func timeLeft(_ r: IterationRecord, maxIterations: Int?) -> String {
        guard let maxIterations, r.iteration > 0, r.iteration < maxIterations else { return "" }
        let seconds = r.elapsedSeconds / Double(r.iteration) * Double(maxIterations - r.iteration)
        return String(format: "  %d/%d  ETA %.0fs", r.iteration, maxIterations, seconds)
    }

    static func json(_ r: IterationRecord) -> Data? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard var data = try? encoder.encode(r) else { return nil }
        data.append(0x0A)
        return data
    }
}

/// A plain error message for the command line.
struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
