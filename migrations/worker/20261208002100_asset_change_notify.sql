-- Progress watches without polling (issue 22, item 9): every change of an asset's status,
-- stage, progress or error, and its deletion, notifies `thinkbank_asset_changed` with the
-- asset id. Each worker holds one LISTEN connection and fans the change out to the asset's
-- watchers (services/ai-worker/src/assets/watch.rs). Notifications are sent at commit and
-- collapse per transaction; the payload is only the id, never tenant data.
CREATE FUNCTION worker.notify_asset_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('thinkbank_asset_changed', OLD.id::text);
    ELSE
        PERFORM pg_notify('thinkbank_asset_changed', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER assets_notify_changed
    AFTER UPDATE ON worker.assets
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.stage IS DISTINCT FROM NEW.stage
          OR OLD.progress IS DISTINCT FROM NEW.progress OR OLD.error IS DISTINCT FROM NEW.error)
    EXECUTE FUNCTION worker.notify_asset_changed();

CREATE TRIGGER assets_notify_deleted
    AFTER DELETE ON worker.assets
    FOR EACH ROW
    EXECUTE FUNCTION worker.notify_asset_changed();
