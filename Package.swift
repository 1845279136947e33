// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Already in the graph through AsyncHTTPClient; used for the rules fingerprint.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        // Already in the graph through Hummingbird: NIO for the MCP stdio transport, NIO's HTTP types for the
        // stream's channel handler.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // Already in the graph through AsyncHTTPClient: TLS for the model calls' own HTTP/1.1 client.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // Tracing: the API (spans, context propagation) where chats are worked on; swift-otel's OTLP/HTTP exporter
        // (only that trait: no gRPC stack) where the server starts; the GenAI conventions' attribute names, which
        // are all still experimental (hence the trait and the minor-version pin).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-otel/swift-otel-semantic-conventions.git", .upToNextMinor(from: "1.44.0"),
                 traits: ["Experimental"]),
    ],
    targets: [
        // Pure: chat request model, stream events, SSE encoding and decoding, the shared vocabulary.
        .target(name: "ChatCore"),
        // Pure: the OpenAI and Anthropic SDKs' wire formats as inbound dialects: their requests read into a chat,
        // a chat's events written back in their shape, their error bodies.
        .target(name: "Dialects", dependencies: ["ChatCore"]),
        // Pure: sentence embeddings from static token vectors (BERT's WordPiece tokenizer, int8 rows) and the
        // level classifier trained on labelled chats (softmax regression by L-BFGS, nearest examples). Its loops
        // are the analysis' hot path and a reload's training, so it is optimised in debug builds too (the tests'
        // builds, where the shipped rules train at every start).
        .target(name: "Semantic", swiftSettings: [.unsafeFlags(["-O"])]),
        // Pure: rules model, YAML loading with diagnostics, analyzer (rules and the semantic stage), the analysis report.
        .target(name: "Routing", dependencies: ["ChatCore", "Semantic", .product(name: "Yams", package: "Yams")]),
        // Configuration files on disk: the one reader (size cap, UTF-8, fingerprint) of rules, API keys and
        // evaluation sets; where the rules come from and loading them (Routing's I/O edge, shared by the server and
        // the commands).
        .target(name: "ConfigFiles", dependencies: ["Routing", "Semantic", .product(name: "Crypto", package: "swift-crypto")]),
        // Anthropic and OpenAI-compatible streaming clients, on their own HTTP/1.1 connections (NIO's codec, TLS).
        .target(name: "Upstream", dependencies: [
            "ChatCore",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "OTelSemanticConventions", package: "swift-otel-semantic-conventions"),
        ]),
        // The database: where it is, SQLite (GRDB) or PostgreSQL behind one small SQL interface, opening it with
        // each part's schema prepared, and the finished streams' records.
        .target(name: "Storage", dependencies: [
            "ChatCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Tool registry, input validation and result caps; the HR tools (on Storage's database); MCP both ways
        // (tools from MCP servers, and ours served over MCP).
        .target(name: "Tools", dependencies: [
            "ChatCore", "Storage",
            .product(name: "MCP", package: "swift-sdk"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "OTelSemanticConventions", package: "swift-otel-semantic-conventions"),
        ]),
        // The agentic loop: model ⇄ tools → events, on protocols only (and the tracing API's spans, no-ops until a
        // tracer is set up).
        .target(name: "ChatPipeline", dependencies: [
            "ChatCore",
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "OTelSemanticConventions", package: "swift-otel-semantic-conventions"),
        ]),
        // Hummingbird application: routes, SSE responses, configuration, rules watching.
        .target(name: "Server", dependencies: [
            "Routing", "ConfigFiles", "ChatCore", "ChatPipeline", "Upstream", "Tools", "Storage", "Dialects",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "OTelSemanticConventions", package: "swift-otel-semantic-conventions"),
        ], resources: [
            .embedInCode("Frontend/index.html"), .embedInCode("Frontend/playground.js"), .embedInCode("Frontend/client.js"),
        ]),
        .executableTarget(name: "switchboard", dependencies: [
            "Server", "Routing", "ConfigFiles", "ChatCore", "ChatPipeline", "Tools", "Storage",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "OTel", package: "swift-otel"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ]),
        .testTarget(name: "RoutingTests", dependencies: ["Routing", "ConfigFiles", "TestSupport"]),
        .testTarget(name: "SemanticTests", dependencies: ["Semantic", "ConfigFiles", "TestSupport"]),
        .testTarget(name: "ChatCoreTests", dependencies: ["ChatCore", "TestSupport"]),
        .testTarget(name: "DialectsTests", dependencies: ["Dialects", "TestSupport"]),
        .testTarget(name: "ChatPipelineTests", dependencies: ["ChatPipeline", "TestSupport"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "TestSupport", .product(name: "Logging", package: "swift-log"),
                                                       .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "ToolsTests", dependencies: ["Tools", "Storage", "TestSupport"]),
        // Helpers shared by the test targets: Python's fastmcp as an independent MCP peer, child processes, ports.
        .target(name: "TestSupport", dependencies: ["ChatCore"], path: "Tests/TestSupport", exclude: ["Fixtures"]),
        // A local server speaking Anthropic's streaming format, for the Upstream, Server and CLI tests.
        // And a raw model service on loopback whose every byte a test scripts (the hostile-upstream suite).
        .target(name: "AnthropicMock", dependencies: [.product(name: "Hummingbird", package: "hummingbird"),
                                                      .product(name: "NIOPosix", package: "swift-nio")],
                path: "Tests/AnthropicMock"),
        .testTarget(name: "UpstreamTests", dependencies: [
            "Upstream", "AnthropicMock", "TestSupport",
            .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            // The reference the upstream client's requests are compared with.
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], exclude: ["Fixtures"]),
        .testTarget(name: "ServerTests", dependencies: [
            "Server", "ConfigFiles", "Upstream", "AnthropicMock", "Tools", "Storage", "TestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], exclude: ["Browser"]),
        .testTarget(name: "switchboardTests", dependencies: [
            "switchboard", "AnthropicMock", "TestSupport", "ChatCore", "Storage",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
    ]
)
