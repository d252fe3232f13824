import ArgumentParser
import CProcess
import Foundation
import NewtonDriver

@main
struct NewtonPS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "newtonps",
        abstract: "Distributed second-order training of neural networks (Newton-CG on a parameter-server cluster).",
        subcommands: [
            TrainCommand.self, EvaluateCommand.self, BenchCommand.self, ConvertCommand.self, SynthCommand.self, DataCommand.self,
            DriverCommand.self, ServerCommand.self, WorkerCommand.self, AgentCommand.self, LocalClusterCommand.self,
            CertificatesCommand.self,
            SubmitCommand.self, JobsCommand.self, StatusCommand.self, WatchCommand.self, CancelCommand.self, ExportCommand.self,
        ]
    )

    /// Line-buffered output (progress lines keep their order in logs) and a
    /// tuned allocator for every command; a worker process also keeps one
    /// malloc arena, set before any other thread allocates. A process that
    /// `newtonps cluster` (or a test) started stops when that parent dies.
    static func main() async {
        newtonps_line_buffer_stdout()
        newtonps_tune_allocator()
        if CommandLine.arguments.dropFirst().first == WorkerCommand.configuration.commandName { newtonps_use_one_arena() }
        ManagedProcess.stopWithParent()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
