public enum ChatCorePlaceholder {}
