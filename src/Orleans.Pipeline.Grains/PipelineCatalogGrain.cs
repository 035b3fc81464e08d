using Orleans.Concurrency;

namespace Orleans.Pipeline.Grains;

/// <summary>Serves the silo's <see cref="PipelineCatalog"/> to clients; a local worker on every silo.</summary>
[StatelessWorker]
internal sealed class PipelineCatalogGrain(PipelineCatalog catalog) : Grain, IPipelineCatalogGrain
{
    public Task<PipelineDefinition[]> GetPipelinesAsync() => Task.FromResult(catalog.All.ToArray());
}
