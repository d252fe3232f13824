// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "newtonps",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "newtonps", targets: ["newtonps"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(name: "CProcess"),
        .target(
            name: "NewtonCore",
            dependencies: ["CBLAS", "CZlib"]
        ),
        .target(name: "NewtonTraining", dependencies: ["NewtonCore"]),
        // Server and worker cores, the embedded cluster, the data catalog: no transport, database or HTTP.
        .target(name: "NewtonRoles", dependencies: ["NewtonCore", "NewtonTraining", "CProcess"]),
        // Health server and metrics (HTTP, Prometheus).
        .target(
            name: "NewtonObservability",
            dependencies: [
                "NewtonCore", "NewtonTraining",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // gRPC services and clients, wire conversions, the server and worker processes.
        .target(
            name: "NewtonTransport",
            dependencies: [
                "NewtonCore", "NewtonTraining", "NewtonRoles", "NewtonObservability", "NewtonProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Job spec, job store (SQLite), job runner, membership, the driver process.
        .target(
            name: "NewtonDriver",
            dependencies: [
                "NewtonCore", "NewtonTraining", "NewtonRoles", "NewtonObservability", "NewtonTransport", "NewtonProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Generated from proto/newtonps/v1/*.proto by scripts/generate-proto.
        .target(
            name: "NewtonProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "newtonps",
            dependencies: [
                "NewtonCore", "NewtonTraining", "NewtonRoles", "NewtonTransport", "NewtonDriver", "NewtonObservability", "CProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "NewtonCoreTests", dependencies: ["NewtonCore"]),
        .testTarget(
            name: "NewtonTrainingTests", dependencies: ["NewtonCore", "NewtonTraining", "NewtonRoles"],
            // The NumPy reference implementation and the fixture it writes.
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "NewtonRolesTests", dependencies: ["NewtonCore", "NewtonTraining", "NewtonRoles"]),
        .testTarget(
            name: "NewtonObservabilityTests",
            dependencies: [
                "NewtonObservability",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "NewtonTransportTests", dependencies: ["NewtonCore", "NewtonTraining", "NewtonProto", "NewtonTransport"]),
        .testTarget(
            name: "NewtonDriverTests",
            dependencies: ["NewtonCore", "NewtonTraining", "NewtonDriver", "NewtonObservability", "NewtonTransport", "NewtonProto"]
        ),
        // Real processes of the built `newtonps` binary on loopback.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "newtonps", "NewtonCore", "NewtonTraining", "NewtonRoles", "NewtonTransport", "NewtonDriver", "NewtonProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // Runs the built `newtonps` binary as a separate process.
        .testTarget(name: "CommandLineTests", dependencies: ["newtonps", "NewtonDriver"]),
    ]
)

// CI builds with NEWTONPS_WARNINGS_AS_ERRORS=1: any warning in this package's
// own code (dependencies are not affected) fails the build.
if Context.environment["NEWTONPS_WARNINGS_AS_ERRORS"] != nil {
    for target in package.targets where target.type != .system {
        target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
    }
}
