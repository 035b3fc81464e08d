using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Orleans.Pipeline.Gateway;

/// <summary>Counts every gateway call by method and final status (<c>pipeline.gateway.requests</c>), and open subscriptions.</summary>
internal sealed class GatewayMetricsInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        TResponse? response = default;
        await ObserveAsync(context, async () => response = await continuation(request, context));
        return response!;
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        TResponse? response = default;
        await ObserveAsync(context, async () => response = await continuation(requestStream, context));
        return response!;
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        PipelineMeter.GatewaySubscribers.Add(1);
        try
        {
            await ObserveAsync(context, () => continuation(request, responseStream, context));
        }
        finally
        {
            PipelineMeter.GatewaySubscribers.Add(-1);
        }
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        ObserveAsync(context, () => continuation(requestStream, responseStream, context));

    /// <summary>Runs the call and counts it with the status it ended with.</summary>
    private static async Task ObserveAsync(ServerCallContext context, Func<Task> call)
    {
        var status = StatusCode.OK;
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            throw;
        }
        catch (Exception)
        {
            status = context.CancellationToken.IsCancellationRequested ? StatusCode.Cancelled : StatusCode.Unknown;
            throw;
        }
        finally
        {
            // The method's last segment ("Publish"): a bounded set, never anything the caller chose.
            var method = context.Method;
            PipelineMeter.GatewayRequests.Add(1, new KeyValuePair<string, object?>("method", method[(method.LastIndexOf('/') + 1)..]), new KeyValuePair<string, object?>("status", status.ToString()));
        }
    }
}
