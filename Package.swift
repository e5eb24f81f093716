// swift-tools-version:6.1
import PackageDescription

/// scripts/tsan.sh sets FANOUT_TSAN=1: this package's own targets are then built with
/// ThreadSanitizer in the build folder of `swift test`, whose dependencies are reused as built
/// (not instrumented, not rebuilt). `swift build --sanitize=thread` would rebuild the whole graph.
let threadSanitized = Context.environment["FANOUT_TSAN"] == "1"

let package = Package(
    name: "fanoutd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fanoutd", targets: ["fanoutd"]),
        .executable(name: "fanout", targets: ["fanout"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // Already in the graph through async-http-client; declared so FanoutUpstream can name NIOCore/NIOPosix/NIOHTTP1.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // In the graph through async-http-client and postgres-nio; FanoutPostgres names NIOSSL for TLS to PostgreSQL.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.25.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP/HTTP span export only: the gRPC exporter (its default trait) would add grpc-swift to every build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // libmicrohttpd from the system (Debian: libmicrohttpd-dev), found through pkg-config.
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        // Fixed-arity wrappers for the variadic MHD entry points Swift cannot import.
        .target(name: "CMicroHTTPDShims", dependencies: ["CMicroHTTPD"]),
        // glibc's malloc_trim / mallopt, which the Glibc module does not export.
        .target(name: "CAllocator"),
        // One lock type (on pthread_mutex_t, which ThreadSanitizer understands) for every module.
        .target(name: "FanoutSync"),
        // The HTTP server: the only importer of the C modules. Knows nothing about jobs.
        .target(
            name: "MicroHTTPServer",
            dependencies: [
                "FanoutSync",
                "CMicroHTTPD",
                "CMicroHTTPDShims",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Jobs: model, validation, dispatcher, NDJSON lines, the echo runner. No I/O of its own.
        .target(
            name: "FanoutCore",
            dependencies: ["FanoutSync", .product(name: "Logging", package: "swift-log")]
        ),
        // The `http` subtask kind: AsyncHTTPClient behind the egress policy.
        .target(
            name: "FanoutUpstream",
            dependencies: [
                "FanoutSync",
                "FanoutCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Retained jobs (SPEC v1.1): the job store protocol, the in-memory store, the numbering sink.
        .target(name: "FanoutJobs", dependencies: ["FanoutCore", "FanoutSync"]),
        // Retained jobs shared by replicas: the JobStore on PostgreSQL (jobs.store: "postgres://…").
        .target(
            name: "FanoutPostgres",
            dependencies: [
                "FanoutCore",
                "FanoutJobs",
                "FanoutSync",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Span export over OTLP/HTTP (swift-otel) behind FanoutCore's small tracing protocol, so
        // that nothing below the service links OpenTelemetry.
        .target(
            name: "FanoutTracing",
            dependencies: [
                "FanoutCore",
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The service: routes, problem+json, configuration, metrics, lifecycle.
        .target(
            name: "FanoutService",
            dependencies: [
                "CAllocator",
                "FanoutTracing",
                "FanoutSync",
                "MicroHTTPServer",
                "FanoutCore",
                "FanoutUpstream",
                "FanoutJobs",
                "FanoutPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // A symlink to the repository's openapi.yaml, served at GET /v1/openapi.yaml byte for byte.
            resources: [.embedInCode("openapi.yaml")]
        ),
        .executableTarget(
            name: "fanoutd",
            dependencies: [
                "FanoutService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The command-line client: a client only (no server modules), FanoutCore for its JSON codec.
        .executableTarget(
            name: "fanout",
            dependencies: [
                "FanoutSync",
                "FanoutCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Test helpers: a raw-socket HTTP/1.x client that sees every byte as it arrives.
        .target(name: "TestSupport", dependencies: ["FanoutSync"], path: "Tests/TestSupport"),
        // A whole fanoutd in process, for the test targets that need one.
        .target(
            name: "ServiceTestSupport",
            dependencies: ["FanoutService", .product(name: "Logging", package: "swift-log")],
            path: "Tests/ServiceTestSupport"
        ),
        .testTarget(name: "MicroHTTPServerTests", dependencies: ["MicroHTTPServer", "FanoutSync", "TestSupport"]),
        .testTarget(name: "FanoutCoreTests", dependencies: ["FanoutCore", "FanoutSync", "TestSupport"]),
        .testTarget(
            name: "FanoutUpstreamTests",
            dependencies: ["FanoutUpstream", "FanoutCore", "FanoutSync", "MicroHTTPServer", "TestSupport"]
        ),
        .testTarget(
            name: "FanoutServiceTests",
            dependencies: [
                "FanoutService", "FanoutCore", "FanoutSync", "FanoutUpstream", "FanoutJobs", "MicroHTTPServer", "TestSupport", "ServiceTestSupport",
                // The registry's own histogram, as the reference that SubtaskDurations prints like.
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(name: "FanoutJobsTests", dependencies: ["FanoutJobs", "FanoutCore", "FanoutSync", "TestSupport"]),
        .testTarget(
            name: "FanoutPostgresTests",
            dependencies: [
                "FanoutPostgres", "FanoutJobs", "FanoutCore", "FanoutSync", "FanoutService", "TestSupport", "ServiceTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // End to end: the built `fanout` binary as a subprocess against an in-process fanoutd.
        .testTarget(
            name: "FanoutCLITests",
            dependencies: ["FanoutService", "FanoutCore", "FanoutSync", "MicroHTTPServer", "TestSupport", "ServiceTestSupport"]
        ),
    ]
)

for target in package.targets where target.type != .system {
    guard target.type != .regular || !target.name.hasPrefix("C") else { continue }
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    settings.append(.unsafeFlags(["-warnings-as-errors"]))
    if threadSanitized {
        settings.append(.unsafeFlags(["-sanitize=thread"]))
        target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-sanitize=thread"])]
    }
    target.swiftSettings = settings
}
if threadSanitized {
    for target in package.targets where target.type == .regular && target.name.hasPrefix("C") {
        target.cSettings = (target.cSettings ?? []) + [.unsafeFlags(["-fsanitize=thread"])]
    }
}
