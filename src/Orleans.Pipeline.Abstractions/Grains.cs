using Orleans.Concurrency;

namespace Orleans.Pipeline;

/// <summary>
/// The grain of one (pipeline, key), keyed <c>pipeline/key</c> (<see cref="PipelineNames.StreamKey"/>). It is
/// activated by its input stream; this interface is for queries.
/// </summary>
public interface IKeyWindowGrain : IGrainWithStringKey
{
    /// <summary>The key's held and recently closed windows.</summary>
    [ReadOnly]
    Task<KeyWindows> GetWindowsAsync();
}

/// <summary>The pipelines a silo runs, for clients (one per cluster: key 0).</summary>
public interface IPipelineCatalogGrain : IGrainWithIntegerKey
{
    /// <summary>Every pipeline definition.</summary>
    [ReadOnly]
    Task<PipelineDefinition[]> GetPipelinesAsync();
}
