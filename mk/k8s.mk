# Kubernetes: the image, the manifests (kustomize via the kubectl from PyPI), deploying.
OVERLAY ?= dev
IMAGE ?= bread:dev
KUBECTL := $(BIN)/kubectl
K8S_OUT := build/k8s
# The gateway's Envoy config is committed, so the manifests render offline and reviews see it.
K8S_ENVOY := k8s/base/gateway/envoy.yaml
K8S_ENVOY_ARGS = $(shell grep -v '^\#' k8s/base/gateway/envoy.args)

# Render an overlay with IMAGE as the bread image: a throwaway kustomization on top of it.
define k8s_build
	@test -f k8s/overlays/$(OVERLAY)/kustomization.yaml || { echo "no overlay k8s/overlays/$(OVERLAY)"; exit 1; }
	@if [ "$(OVERLAY)" = prod ] && [ ! -f k8s/overlays/prod/credentials.env ]; then \
		echo "k8s/overlays/prod/credentials.env is missing: see credentials.env.example"; exit 1; fi
	@mkdir -p $(K8S_OUT)/$(OVERLAY)
	@image='$(IMAGE)'; name="$${image%:*}"; tag="$${image##*:}"; \
		case "$$tag" in */*|"$$image") echo "IMAGE must be NAME:TAG, got $$image"; exit 1;; esac; \
		printf '%s\n' 'resources: [../../../k8s/overlays/$(OVERLAY)]' \
			"images: [{name: bread, newName: \"$$name\", newTag: \"$$tag\"}]" \
			> $(K8S_OUT)/$(OVERLAY)/kustomization.yaml
endef

k8s-render: $(INSTALLED) ## render the overlay OVERLAY (dev|prod) with IMAGE into build/k8s/
	$(k8s_build)
	$(KUBECTL) kustomize $(K8S_OUT)/$(OVERLAY) > $(K8S_OUT)/$(OVERLAY).yaml
	@echo "wrote $(K8S_OUT)/$(OVERLAY).yaml"

k8s-envoy: $(INSTALLED) ## regenerate the gateway's Envoy config k8s/base/gateway/envoy.yaml
	$(PY) -m ops.envoy_config --out $(K8S_ENVOY) $(K8S_ENVOY_ARGS)

image: ## build the one image of every service as IMAGE (default bread:dev)
	docker build -t $(IMAGE) .

deploy: $(INSTALLED) ## kubectl apply the overlay OVERLAY (dev|prod) with IMAGE to the current context
	$(k8s_build)
	$(KUBECTL) apply -k $(K8S_OUT)/$(OVERLAY)

.PHONY: k8s-render k8s-envoy image deploy
