// swift-tools-version: 6.1
import PackageDescription

// losad: on-device model compression daemon (see shared docs/ARCHITECTURE.md).
// Numerics are compiled for the CPU that builds them: losad is built on the
// machine that runs it, like llama.cpp's GGML_NATIVE default.
let nativeCodegen: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "native"], .when(platforms: [.linux])),
]

let package = Package(
    name: "losad",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "losad", targets: ["losad"]),
        .executable(name: "losactl", targets: ["losactl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Headers only: OpenBLAS is loaded at run time (Kernels/OpenBLAS.swift)
        // so that OPENBLAS_CORETYPE can be chosen before the library initialises.
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            path: "Sources/CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // SIMD kernels in C (quantised and sparse products): each path carries its own target
        // attribute and is chosen at run time, so they are optimised even in debug builds.
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]
        ),
        .target(
            name: "Kernels",
            dependencies: [
                "CBLAS",
                "CKernels",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: nativeCodegen
        ),
        .target(
            name: "ModelFormats",
            dependencies: ["Kernels"],
            swiftSettings: nativeCodegen
        ),
        .target(
            name: "Transformer",
            dependencies: ["Kernels", "ModelFormats"],
            swiftSettings: nativeCodegen
        ),
        .target(
            name: "Compression",
            dependencies: ["Kernels", "ModelFormats", "Transformer"],
            swiftSettings: nativeCodegen
        ),
        // The job ledger: SQLite schema, migrations and records. Imports no numerics.
        .target(
            name: "Ledger",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The daemon: configuration, inbox watching, scheduling, publishing, control and systemd glue; it runs
        // jobs through Compression, whose job settings it uses as they are.
        .target(
            name: "Daemon",
            dependencies: [
                "Ledger",
                "Kernels",
                "ModelFormats",
                "Transformer",
                "Compression",
                "CSystemd",
                "Control",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .executableTarget(
            name: "losad",
            dependencies: [
                "Daemon",
                "Control",
                "Kernels",
                "ModelFormats",
                "Transformer",
                "Compression",
                "CSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The varlink protocol and the io.losa.Manager interface, shared by the
        // daemon and losactl; it never imports numerics.
        .target(
            name: "Control",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Compiled in as bytes, so the served definition is exactly the
            // committed file and no resource bundle has to be installed.
            resources: [.embedInCode("io.losa.Manager.varlink"), .embedInCode("org.varlink.service.varlink")]
        ),
        .executableTarget(
            name: "losactl",
            dependencies: [
                "Control",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "KernelsBenchmark",
            dependencies: ["Kernels"],
            path: "Benchmarks/KernelsBenchmark",
            swiftSettings: nativeCodegen
        ),
        .executableTarget(
            name: "EngineBenchmark",
            dependencies: ["Transformer", "ModelFormats", "Kernels"],
            path: "Benchmarks/EngineBenchmark",
            swiftSettings: nativeCodegen
        ),
        .testTarget(
            name: "CompressionTests",
            dependencies: ["Compression", "Transformer", "Kernels", "ModelFormats"],
            resources: [.copy("Fixtures")],
            swiftSettings: nativeCodegen
        ),
        .testTarget(
            name: "DaemonTests",
            dependencies: [
                "Daemon",
                "Compression",
                "Ledger",
                "Control",
                "ModelFormats",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ControlTests",
            dependencies: [
                "Control",
                "losactl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "KernelsTests",
            dependencies: ["Kernels"],
            swiftSettings: nativeCodegen
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: ["Ledger"]
        ),
        .testTarget(
            name: "LosadTests",
            dependencies: ["losad", "losactl", "Daemon", "Ledger", "Control", "ModelFormats", "Transformer", "Compression"]
        ),
        .testTarget(
            name: "ModelFormatsTests",
            dependencies: ["ModelFormats"],
            resources: [.copy("Fixtures")],
            swiftSettings: nativeCodegen
        ),
        .testTarget(
            name: "TransformerTests",
            dependencies: ["Transformer", "Kernels", "ModelFormats"],
            resources: [.copy("Fixtures")],
            swiftSettings: nativeCodegen
        ),
    ]
)
