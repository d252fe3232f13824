// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "newtonps",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "newtonps", targets: ["newtonps"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
            dependencies: ["CBLAS", "CZlib"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(name: "NewtonTraining", dependencies: ["NewtonCore"]),
        .target(name: "NewtonCluster", dependencies: ["NewtonCore", "NewtonTraining"]),
        .executableTarget(
            name: "newtonps",
            dependencies: [
                "NewtonCore", "NewtonTraining", "NewtonCluster", "CProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "NewtonCoreTests", dependencies: ["NewtonCore"]),
        .testTarget(name: "NewtonTrainingTests", dependencies: ["NewtonTraining", "NewtonCluster"]),
        .testTarget(name: "NewtonClusterTests", dependencies: ["NewtonCluster"]),
        // Runs the built `newtonps` binary as a separate process.
        .testTarget(name: "CommandLineTests", dependencies: ["newtonps"]),
    ]
)
