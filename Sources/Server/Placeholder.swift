import Hummingbird
import ServiceLifecycle
import Logging
public enum ServerPlaceholder {}
