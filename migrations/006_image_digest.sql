-- Status: the registry digest (sha256:…) of the image the plugin's container runs, as the
-- manager's last pull of it found it (imagePullPolicy Always compares digests, so a new push
-- under the same tag is an update). NULL while unknown. See README "Private registries".
ALTER TABLE plugins ADD COLUMN image_digest TEXT;
