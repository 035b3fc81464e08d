namespace Orleans.Pipeline.Client;

/// <summary>
/// What a <see cref="PipelineClient"/> and its partition senders share: the producer id every item carries, the
/// producer's tagged requests, the items that failed for good (until <see cref="PipelineClient.FlushAsync"/> reports
/// them) and how often anything waited because the pipeline was behind.
/// </summary>
internal sealed class Producer(Guid id)
{
    private readonly SortedSet<long> _openRequests = [];
    private readonly Queue<Exception> _failures = new();
    private long _lastRequest;
    private long _waits;

    public Guid Id { get; } = id;

    /// <summary>Times a publisher or sender waited because the pipeline was behind (backpressure).</summary>
    public long Waits => Interlocked.Read(ref _waits);

    public void Waited()
    {
        Interlocked.Increment(ref _waits);
        PipelineMeter.BackpressureWaits.Add(1);
    }

    /// <summary>Tags a new request, open until <see cref="CloseRequest"/>.</summary>
    public RequestTag OpenRequest()
    {
        lock (_openRequests)
        {
            var tag = ++_lastRequest;
            _openRequests.Add(tag);
            return new RequestTag(Id, tag);
        }
    }

    public void CloseRequest(long tag)
    {
        lock (_openRequests) _openRequests.Remove(tag);
    }

    /// <summary>This producer's oldest tag that may still be published again (0 before the first tag).</summary>
    public long OpenFrom()
    {
        lock (_openRequests) return _lastRequest == 0 ? 0 : _openRequests.Count > 0 ? _openRequests.Min : _lastRequest + 1;
    }

    /// <summary>Records an item that failed for good, for the next <see cref="TakeFailures"/>.</summary>
    public void Failed(Exception failure)
    {
        lock (_failures) _failures.Enqueue(failure);
    }

    /// <summary>The failures recorded since the last call.</summary>
    public List<Exception> TakeFailures()
    {
        lock (_failures)
        {
            List<Exception> failures = [.. _failures];
            _failures.Clear();
            return failures;
        }
    }
}
