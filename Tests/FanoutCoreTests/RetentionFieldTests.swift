import Testing

@testable import FanoutCore

@Suite("Retained-job fields")
struct RetentionFieldTests {
    func decode(_ text: String) throws(JobValidationError) -> Job {
        var runners = RunnerRegistry()
        runners.register(EchoRunner())
        return try JobDecoder(policy: JobPolicy(), runners: runners).decode(Array(text.utf8))
    }

    @Test func defaultsKeepV1Behaviour() throws {
        let job = try decode(#"{"tasks":[{"kind":"echo"}]}"#)
        #expect(job.detach == false)
        #expect(job.onDisconnect == .cancel)
    }

    @Test func readsDetachAndOnDisconnect() throws {
        let job = try decode(#"{"tasks":[{"kind":"echo"}],"detach":true,"on_disconnect":"continue"}"#)
        #expect(job.detach)
        #expect(job.onDisconnect == .continue)
    }

    @Test func badValuesNameTheField() {
        for (text, field) in [
            (#"{"tasks":[{"kind":"echo"}],"detach":"yes"}"#, "detach"),
            (#"{"tasks":[{"kind":"echo"}],"on_disconnect":"stay"}"#, "on_disconnect"),
            (#"{"tasks":[{"kind":"echo"}],"on_disconnect":1}"#, "on_disconnect"),
        ] {
            #expect(throws: JobValidationError.self) { try decode(text) }
            do {
                _ = try decode(text)
            } catch {
                #expect(error.field == field)
            }
        }
    }
}
