import Testing

@testable import MicroHTTPServer

/// The transitions of a response stream's state machine, without a connection.
@Suite("StreamBuffer transitions")
struct StreamBufferTests {
    /// Reads up to `max` bytes as MHD's content reader would.
    func read(_ buffer: inout StreamBuffer, max: Int = 1024) -> (StreamBuffer.ReadAction, [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: max)
        let action = bytes.withUnsafeMutableBytes { buffer.read(into: $0.baseAddress!, max: max) }
        if case .copied(let count, _) = action { return (action, Array(bytes.prefix(count))) }
        return (action, [])
    }

    @Test func anEmptyReadSuspendsAndTheNextWriteResumes() {
        var buffer = StreamBuffer(highWater: 16)
        #expect(buffer.state == .idle)
        guard case .suspend = read(&buffer).0 else { Issue.record("an empty open stream suspends"); return }
        #expect(buffer.state == .suspended)
        guard case .nothing = read(&buffer).0 else { Issue.record("never suspends twice"); return }
        #expect(buffer.write(contentsOf: [Array("ab".utf8)]) == .queued(resume: true, wait: false), "the write that leaves .suspended resumes")
        #expect(buffer.state == .buffering)
        #expect(buffer.write(contentsOf: [Array("cd".utf8)]) == .queued(resume: false, wait: false), "only once")
        let (action, bytes) = read(&buffer)
        guard case .copied(4, nil) = action else { Issue.record("copies what is queued: \(action)"); return }
        #expect(bytes == Array("abcd".utf8))
        #expect(buffer.state == .idle)
    }

    @Test func readsInPiecesAcrossChunks() {
        var buffer = StreamBuffer(highWater: 1024)
        _ = buffer.write(contentsOf: [Array("hello ".utf8)])
        _ = buffer.write(contentsOf: [Array("world".utf8)])
        #expect(read(&buffer, max: 4).1 == Array("hell".utf8))
        #expect(read(&buffer, max: 4).1 == Array("o wo".utf8))
        #expect(buffer.state == .buffering)
        #expect(read(&buffer, max: 4).1 == Array("rld".utf8))
        #expect(buffer.isEmpty)
        #expect(buffer.state == .idle)
    }

    /// Pieces written at once are read in order, across their boundaries, empty ones skipped;
    /// the write waits if they take the buffer over its high-water mark together.
    @Test func piecesWrittenAtOnceAreReadInOrder() {
        var buffer = StreamBuffer(highWater: 8)
        #expect(buffer.write(contentsOf: [Array("ab".utf8), [], Array("cdef".utf8), Array("ghi".utf8)]) == .queued(resume: false, wait: true))
        #expect(buffer.buffered == 9)
        #expect(read(&buffer, max: 3).1 == Array("abc".utf8))
        #expect(read(&buffer, max: 5).1 == Array("defgh".utf8))
        #expect(read(&buffer, max: 5).1 == Array("i".utf8))
        #expect(buffer.state == .idle)
        #expect(buffer.write(contentsOf: [[UInt8]]()) == .queued(resume: false, wait: false))
        #expect(buffer.state == .idle, "nothing written leaves the reader as it was")
    }

    @Test func overTheHighWaterMarkTheWriterWaits() {
        var buffer = StreamBuffer(highWater: 8)
        #expect(buffer.write(contentsOf: [[UInt8](repeating: 1, count: 8)]) == .queued(resume: false, wait: false))
        #expect(buffer.write(contentsOf: [[1]]) == .queued(resume: false, wait: true))
        #expect(buffer.lowWater == 4)
    }

    @Test func finishDrainsThenEnds() {
        var buffer = StreamBuffer(highWater: 16)
        _ = buffer.write(contentsOf: [Array("xy".utf8)])
        let wakeups = buffer.finish()
        #expect(!wakeups.resume)
        #expect(buffer.state == .finished)
        #expect(buffer.producerDone)
        #expect(buffer.write(contentsOf: [[1]]) == .refused, "no write after finish")
        #expect(read(&buffer).1 == Array("xy".utf8))
        guard case .endOfStream = read(&buffer).0 else { Issue.record("ends cleanly once drained"); return }
    }

    @Test func finishWhileSuspendedResumes() {
        var buffer = StreamBuffer(highWater: 16)
        _ = read(&buffer)
        #expect(buffer.state == .suspended)
        #expect(buffer.finish().resume)
        #expect(buffer.state == .finished)
    }

    @Test func aFinishedBodyIsReadWithoutAProducer() {
        var buffer = StreamBuffer(highWater: 4, finishedWith: Array("all of it".utf8))
        #expect(buffer.state == .finished)
        #expect(read(&buffer).1 == Array("all of it".utf8))
        guard case .endOfStream = read(&buffer).0 else { Issue.record("then ends"); return }
    }

    @Test func cancelEndsWithAnErrorAndResumesOnlyASuspendedReader() {
        var open = StreamBuffer(highWater: 16)
        _ = open.write(contentsOf: [[1, 2]])
        #expect(open.cancel(onlyIfSuspended: true) == nil, "the watchdog leaves a stream that is not suspended alone")
        let wakeups = open.cancel()
        #expect(wakeups?.resume == false)
        #expect(open.state == .cancelled)
        #expect(open.write(contentsOf: [[3]]) == .refused)
        guard case .endWithError = read(&open).0 else { Issue.record("the next read ends with an error"); return }

        var suspended = StreamBuffer(highWater: 16)
        _ = read(&suspended)
        #expect(suspended.cancel(onlyIfSuspended: true)?.resume == true)
        #expect(suspended.state == .cancelled)
    }

    /// The observer of a `closeObservingStream` producer: told once by whichever of cancel and
    /// close comes first, never after the producer returned, at once if it comes too late.
    @Test func theCloseObserverIsToldOnceUnlessTheProducerReturnedFirst() {
        let observer: @Sendable () -> Void = {}
        var cancelled = StreamBuffer(highWater: 16)
        let storedBeforeCancel = cancelled.observeClose(observer)
        let cancel = cancelled.cancel()
        let closeAfterCancel = cancelled.close()
        #expect(storedBeforeCancel)
        #expect(cancel?.closeObserver != nil, "a cancel (client gone, server stopping) tells it")
        #expect(closeAfterCancel.closeObserver == nil, "the close after it does not tell it again")

        var closed = StreamBuffer(highWater: 16)
        let storedBeforeClose = closed.observeClose(observer)
        let close = closed.close()
        let storedAfterClose = closed.observeClose(observer)
        #expect(storedBeforeClose)
        #expect(close.closeObserver != nil, "MHD completing the request tells it")
        #expect(!storedAfterClose, "an observer that comes after the close is told by the caller at once")

        var finished = StreamBuffer(highWater: 16)
        _ = finished.observeClose(observer)
        _ = finished.finish()
        let closeAfterFinish = finished.close()
        #expect(closeAfterFinish.closeObserver == nil, "a producer that returned is not told")
    }

    @Test func closeIsFinalAndDropsWhatIsQueued() {
        var buffer = StreamBuffer(highWater: 16)
        _ = buffer.write(contentsOf: [[1, 2, 3]])
        _ = buffer.close()
        #expect(buffer.state == .closed)
        #expect(buffer.isEmpty)
        #expect(buffer.cancel() == nil, "nothing acts on a closed stream")
        #expect(buffer.write(contentsOf: [[4]]) == .refused)
        _ = buffer.finish()
        #expect(buffer.state == .closed)
        guard case .endWithError = read(&buffer).0 else { Issue.record("a closed stream never reads"); return }
    }
}
