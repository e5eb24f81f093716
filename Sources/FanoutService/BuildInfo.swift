extension FanoutService {
    /// The release, as `info.version` of openapi.yaml and the `version` label of `fanout_build_info`.
    public static let version = "1.1.0"
}
