namespace Orleans.Pipeline.Grains;

/// <summary>Names of the storage providers the grains use; the hosting layer decides what backs them.</summary>
public static class PipelineStorage
{
    /// <summary>Grain storage for partition grain state (key grains use <see cref="IKeyStateStore"/>).</summary>
    public const string StateStorage = "pipeline-state";

    /// <summary>The key grain's class name, as Orleans' per-class options (collection age) name it.</summary>
    public const string KeyGrainClass = "Orleans.Pipeline.Grains.KeyWindowGrain";
}
