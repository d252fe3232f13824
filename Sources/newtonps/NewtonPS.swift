import ArgumentParser
import CMalloc

@main
struct NewtonPS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "newtonps",
        abstract: "Distributed second-order training of neural networks (Newton-CG on a parameter-server cluster).",
        subcommands: [TrainCommand.self, EvaluateCommand.self, BenchCommand.self, ConvertCommand.self, SynthCommand.self]
    )

    /// Large tensors are allocated and freed constantly; keep glibc from
    /// returning them to the kernel each time (fresh pages cost page faults).
    static func tuneAllocator() {
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 128 << 20)
        _ = mallopt(M_TOP_PAD, 64 << 20)
    }
}
