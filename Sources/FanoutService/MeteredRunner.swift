import FanoutCore

/// Wraps a runner to keep `fanout_subtasks_in_flight` and the subtask duration histogram.
struct MeteredRunner<Base: SubtaskRunner>: SubtaskRunner {
    let base: Base
    let metrics: ServiceMetrics

    var kind: String { base.kind }
    var fields: Set<String> { base.fields }

    func decode(_ task: JSONValue, path: String) throws(JobValidationError) -> Base.Payload {
        try base.decode(task, path: path)
    }

    /// Immediate outcomes never run, so they are not in flight and have no duration to record.
    func immediateOutcome(_ payload: Base.Payload) -> SubtaskOutcome? {
        base.immediateOutcome(payload)
    }

    func run(_ payload: Base.Payload, context: SubtaskContext) async -> SubtaskOutcome {
        metrics.subtaskStarted()
        let start = ContinuousClock.now
        let outcome = await base.run(payload, context: context)
        metrics.subtaskEnded(kind: base.kind, duration: .now - start)
        return outcome
    }
}
