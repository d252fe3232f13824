import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NewtonCore
import NewtonDriver
import NewtonProto
import NewtonTraining
import SwiftProtobuf
import XCTest

@testable import NewtonTransport

/// Mutated protobuf messages sent to every method of the driver, of a
/// parameter server and of an agent, over the real (TLS, token) transport. No process may
/// crash or stop answering. `NEWTONPS_FUZZ_CASES` sets the number of cases
/// (`scripts/soak` runs 10⁵).
final class FuzzTests: ClusterTestCase {
    private static var cases: Int { Int(ProcessInfo.processInfo.environment["NEWTONPS_FUZZ_CASES"] ?? "") ?? 3000 }

    func testMutatedMessagesToEveryMethodCrashNothing() async throws {
        // An empty data root: no fuzzed spec can make the driver read a file.
        let dataRoot = directory.appendingPathComponent("data").path
        try FileManager.default.createDirectory(atPath: dataRoot, withIntermediateDirectories: true)
        let cluster = try await startCluster(servers: 1, workers: 1, agents: 1, dataRoot: dataRoot)
        defer { cluster.stop() }
        let targets: [(member: LocalCluster.Member, methods: [MethodDescriptor])] = [
            (cluster.driver, Newtonps_V1_Driver.Method.descriptors),
            (cluster.servers[0], Newtonps_V1_ParameterServer.Method.descriptors),
            (cluster.agents[0], Newtonps_V1_Agent.Method.descriptors),
        ]
        let clients = try targets.map { try RawClient(to: $0.member.grpc!, credentials: cluster.credentials) }
        defer {
            for client in clients { client.close() }
        }
        let seeds = try Self.seeds()
        var rng = SeededGenerator(seed: 20_261_201, stream: 0)
        var outcomes = [String: Int]()
        let clock = ContinuousClock.now
        for i in 0..<Self.cases {
            let target = i % targets.count
            let method = targets[target].methods[(i / targets.count) % targets[target].methods.count]
            let message = Self.mutate(seeds[Int(rng.next() % UInt64(seeds.count))], seeds: seeds, &rng)
            outcomes[await clients[target].send(message, to: method), default: 0] += 1
            if i % 500 == 499 {
                for member in cluster.members { XCTAssertTrue(member.process.isRunning, "\(member.role) died after \(i + 1) cases") }
            }
        }
        let seconds = ContinuousClock.now - clock
        var crashes = 0
        for member in cluster.members {
            let alive = member.process.isRunning
            let healthy = alive ? ((try? await httpGet(member.http, "/healthz").status) == 200) : false
            if !alive || !healthy { crashes += 1 }
            XCTAssertTrue(healthy, "\(member.role) is not healthy after the fuzzing; output:\n\(member.process.output.suffix(2000))")
        }
        // The driver still does its job.
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        _ = try await client.jobs()
        print(
            "fuzz: \(Self.cases) cases in \(seconds) over \(targets.map(\.methods.count).reduce(0, +)) methods, \(crashes) crashed or unhealthy processes; outcomes \(outcomes.sorted { $0.key < $1.key })"
        )
    }

    /// Valid messages of many request types, serialised: the starting points
    /// of the mutations (and each is sent to every method, so every method
    /// also sees messages of the wrong type).
    private static func seeds() throws -> [[UInt8]] {
        let grid = PartitionGrid(unpartitioned: try NetworkSpec(layerSizes: [4, 3, 2], activations: [.tanh], loss: .crossEntropy))
        let spec =
            "synthetic: {train_rows: 100, test_rows: 10, features: 4, classes: 2, seed: 1}\nlayers: [4, 3, 2]\nmax_iterations: 1\nshard_rows: 50\n"
        let messages: [any SwiftProtobuf.Message] = [
            Newtonps_V1_SubmitJobRequest.with { $0.specYaml = spec },
            Newtonps_V1_JobRequest.with { $0.jobID = "job-0001" },
            Newtonps_V1_RegisterRequest.with {
                $0.peer = .with {
                    $0.role = "server"
                    $0.endpoint = "127.0.0.1:1"
                    $0.version = NewtonPSVersion.version
                    $0.protocol = NewtonPSVersion.wireProtocol
                }
            },
            Newtonps_V1_HeartbeatRequest.with { $0.peerID = "server-1-0" },
            Newtonps_V1_WorkerMessage.with { $0.hello.peerID = "worker-1-0" },
            Newtonps_V1_AssignRequest.with {
                $0.jobID = "fuzz"
                $0.grid = grid.wire
                $0.blocks = grid.blocks.indices.map(Int32.init)
                $0.weights = grid.blocks.map { WireTensor([Float](repeating: 0.5, count: grid.parameterCount($0))) }
            },
            Newtonps_V1_ReadRequest.with {
                $0.vector = "weights"
                $0.blocks = [0, 1]
                $0.heldVersions = [1, 2]
            },
            Newtonps_V1_RunRequest.with {
                $0.program = [
                    .with {
                        $0.fill = .with {
                            $0.target = "gradient"
                            $0.value = 1
                        }
                    },
                    .with {
                        $0.dot = .with {
                            $0.a = "gradient"
                            $0.b = "weights"
                        }
                    },
                ]
            },
            Newtonps_V1_BeginSumRequest.with {
                $0.vector = "gradient"
                $0.shards = 2
                $0.round = 1
            },
            Newtonps_V1_BeginJacobianRequest.with {
                $0.rows = 10
                $0.round = 2
            },
            Newtonps_V1_PushJacobianRequest.with {
                ($0.jobID, $0.round, $0.rowOffset, $0.blocks) = ("fuzz", 2, 0, [0, 1])
                $0.inputs = [WireTensor([1, 0, 2, 0]), WireTensor([0.5, 0, 1])]
                $0.packedSlices = [
                    Newtonps_V1_PackedSlice(SliceShare.columns(of: [1, 0, 2, 3, 0, 4], classes: 2, fullWidth: 3, columns: 0..<3).packed),
                    Newtonps_V1_PackedSlice(SliceShare.columns(of: [1, 0, 0, 1], classes: 2, fullWidth: 2, columns: 0..<2).packed),
                ]
                $0.outputs = WireTensor([0.1, -0.1])
            },
            Newtonps_V1_JacobianProductRequest.with {
                $0.vector = "conjugate"
                $0.first = [.with { $0.fill = .with { ($0.target, $0.value) = ("conjugate", 0.5) } }]
            },
            Newtonps_V1_JacobianTransposeRequest.with {
                $0.u = WireTensor([0.5, -0.5, 0.25, -0.25])
                $0.vector = "product"
                $0.then = [.with { $0.dot = .with { ($0.a, $0.b) = ("product", "product") } }]
            },
            Newtonps_V1_BlockSolveRequest.with {
                $0.block = 0
                $0.rightHandSide = "gradient"
                $0.solution = "direction"
                $0.residual = "residual"
                $0.tolerance = 0.1
                $0.maxIterations = 5
            },
            Newtonps_V1_AgentJob.with {
                $0.jobID = "fuzz"
                $0.agents = ["127.0.0.1:1"]
                $0.grid = grid.wire
                $0.data =
                    DataDescriptor(source: .synthetic(trainRows: 100, testRows: 0, features: 4, classes: 2, seed: 1), scaling: .none).wire
                $0.rowUpper = 100
                $0.shardRows = 50
                $0.settings = .with {
                    ($0.method, $0.agents, $0.topology, $0.surrogate, $0.regularizer, $0.products) = (
                        "next", 1, "ring", "linear", "l2", "rop"
                    )
                    ($0.l1Strength, $0.initialStep, $0.stepDecay, $0.cgTolerance, $0.cgMaxIterations, $0.subsample) = (
                        1e-4, 0.1, 0.01, 0.1, 5, 0.5
                    )
                    ($0.totalRows, $0.regularization) = (100, 1)
                }
                $0.initial = WireTensor([Float](repeating: 0.1, count: grid.blocks.map(grid.parameterCount).reduce(0, +)))
            },
            Newtonps_V1_AgentRoundRequest.with { ($0.jobID, $0.round, $0.alpha) = ("fuzz", 1, 0.1) },
            Newtonps_V1_ExchangeRequest.with {
                ($0.jobID, $0.round, $0.sender) = ("fuzz", 1, 0)
                $0.vectors = [WireTensor([1, 2, 3])]
            },
        ]
        return try messages.map { try $0.serializedBytes() }
    }

    /// One of: flipped bits, overwritten bytes, inserted or deleted runs, a
    /// truncation, a splice of two seeds, 0xFF runs (huge varints), or
    /// random bytes.
    private static func mutate(_ seed: [UInt8], seeds: [[UInt8]], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = seed
        func index(_ count: Int) -> Int { count == 0 ? 0 : Int(rng.next() % UInt64(count)) }
        for _ in 0...index(4) {
            switch rng.next() % 8 {
            case 0 where !bytes.isEmpty: bytes[index(bytes.count)] ^= UInt8(1 << (rng.next() % 8))
            case 1 where !bytes.isEmpty: bytes[index(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
            case 2:
                bytes.insert(contentsOf: (0..<index(16) + 1).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: index(bytes.count + 1))
            case 3 where !bytes.isEmpty:
                let start = index(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + index(16) + 1))
            case 4: bytes = Array(bytes.prefix(index(bytes.count + 1)))
            case 5:
                let other = seeds[index(seeds.count)]
                bytes = Array(bytes.prefix(index(bytes.count + 1))) + other.suffix(index(other.count + 1))
            case 6: bytes.insert(contentsOf: [UInt8](repeating: 0xFF, count: index(12) + 1), at: index(bytes.count + 1))
            default: bytes = (0..<index(64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        return bytes
    }
}

/// A gRPC client that sends raw bytes to any method (each call one request
/// message, every response read) with the cluster's credentials.
private final class RawClient: Sendable {
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let runner: Task<Void, Never>

    init(to endpoint: NewtonTransport.Endpoint, credentials: ClusterCredentials) throws {
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: endpoint.host, port: endpoint.port), transportSecurity: credentials.clientSecurity,
            config: WireSettings.client)
        let client = GRPCClient(transport: transport, interceptors: credentials.token.map { [PresentClusterToken(token: $0)] } ?? [])
        self.client = client
        runner = Task { try? await client.runConnections() }
    }

    /// "ok", or the status code the call ended with.
    func send(_ message: [UInt8], to method: MethodDescriptor) async -> String {
        var options = CallOptions.defaults
        options.timeout = .seconds(2)
        options.waitForReady = false
        do {
            try await client.bidirectionalStreaming(
                request: StreamingClientRequest(of: [UInt8].self) { try await $0.write(message) }, descriptor: method,
                serializer: RawBytes(), deserializer: RawBytes(), options: options
            ) { response in
                for try await _ in response.messages {}
            }
            return "ok"
        } catch let error as RPCError {
            return "\(error.code)"
        } catch {
            return "\(type(of: error))"
        }
    }

    func close() { client.beginGracefulShutdown() }
}

private struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}
