import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.config.Configuration;
import io.kroxylicious.proxy.internal.clusternetworkaddressconfigprovider.RangeAwarePortPerNodeClusterNetworkAddressConfigProvider;
import io.kroxylicious.proxy.internal.clusternetworkaddressconfigprovider.RangeAwarePortPerNodeClusterNetworkAddressConfigProvider.RangeAwarePortPerNodeClusterNetworkAddressConfigProviderConfig;
import io.kroxylicious.proxy.internal.config.Features;
import io.kroxylicious.proxy.plugin.Plugin;
import io.kroxylicious.proxy.service.ClusterNetworkAddressConfigProvider;
import io.kroxylicious.proxy.service.ClusterNetworkAddressConfigProviderService;
import io.kroxylicious.proxy.service.HostPort;

/**
 * Runs Kroxylicious from a YAML configuration file, for the benchmark's peer proxies.
 *
 * <p>Kroxylicious's own command-line entry point (kroxylicious-app) is not published to Maven
 * Central; its runtime is. This does what that entry point does, minus the banner: parse the file
 * with Kroxylicious's ConfigParser, start a KafkaProxy with the default feature set, and block
 * until the JVM is asked to stop (SIGTERM runs the shutdown hook).
 *
 * <p>Usage: {@code java -cp CLASSES:JARS/* KroxyliciousLauncher proxy.yaml}
 *
 * <p>It also holds {@link LoopbackPortPerNode}, a network address plugin that Kroxylicious finds
 * through its ServiceLoader discovery (CLASSES/META-INF/services, written by
 * kafka_testbed.peer_kroxylicious) so that the proxy listens on 127.0.0.1 only.
 */
public final class KroxyliciousLauncher {

    private KroxyliciousLauncher() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: KroxyliciousLauncher CONFIG.yaml");
            System.exit(2);
        }
        ConfigParser parser = new ConfigParser();
        Configuration configuration;
        try (InputStream yaml = Files.newInputStream(Path.of(args[0]))) {
            configuration = parser.parseConfiguration(yaml);
        }
        KafkaProxy proxy = new KafkaProxy(parser, configuration, Features.defaultFeatures());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(proxy), "launcher-shutdown"));
        proxy.startup();
        System.out.println("KroxyliciousLauncher: proxy started from " + args[0]);
        proxy.block();
    }

    private static void stop(KafkaProxy proxy) {
        try {
            proxy.shutdown();
        }
        catch (RuntimeException alreadyStopped) {
            // Shut down already (block() returned): nothing left to stop.
        }
    }

    /**
     * Kroxylicious's port-per-node addressing (RangeAwarePortPerNodeClusterNetworkAddressConfigProvider,
     * what a {@code portIdentifiesNode} gateway uses, with the same config) bound to 127.0.0.1.
     *
     * <p>In Kroxylicious 0.12 only the SNI strategy, which needs TLS, takes a bind address; the
     * port-based one listens on every interface. The deprecated virtual-cluster property
     * {@code clusterNetworkAddressConfigProvider: {type: LoopbackPortPerNode, config: ...}} still
     * names a provider plugin by type, so this one delegates everything to Kroxylicious's own
     * provider except the bind address.
     */
    @Plugin(configType = RangeAwarePortPerNodeClusterNetworkAddressConfigProviderConfig.class)
    public static final class LoopbackPortPerNode
            implements ClusterNetworkAddressConfigProviderService<RangeAwarePortPerNodeClusterNetworkAddressConfigProviderConfig> {

        static final String BIND_ADDRESS = "127.0.0.1";

        @Override
        public ClusterNetworkAddressConfigProvider build(RangeAwarePortPerNodeClusterNetworkAddressConfigProviderConfig config) {
            return new Loopback(new RangeAwarePortPerNodeClusterNetworkAddressConfigProvider().build(config));
        }
    }

    private record Loopback(ClusterNetworkAddressConfigProvider delegate) implements ClusterNetworkAddressConfigProvider {

        @Override
        public Optional<String> getBindAddress() {
            return Optional.of(LoopbackPortPerNode.BIND_ADDRESS);
        }

        @Override
        public HostPort getClusterBootstrapAddress() {
            return delegate.getClusterBootstrapAddress();
        }

        @Override
        public HostPort getBrokerAddress(int nodeId) {
            return delegate.getBrokerAddress(nodeId);
        }

        @Override
        public HostPort getAdvertisedBrokerAddress(int nodeId) {
            return delegate.getAdvertisedBrokerAddress(nodeId);
        }

        @Override
        public Integer getBrokerIdFromBrokerAddress(HostPort address) {
            return delegate.getBrokerIdFromBrokerAddress(address);
        }

        @Override
        public boolean requiresServerNameIndication() {
            return delegate.requiresServerNameIndication();
        }

        @Override
        public Set<Integer> getExclusivePorts() {
            return delegate.getExclusivePorts();
        }

        @Override
        public Set<Integer> getSharedPorts() {
            return delegate.getSharedPorts();
        }

        @Override
        public Map<Integer, HostPort> discoveryAddressMap() {
            return delegate.discoveryAddressMap();
        }
    }
}
